"""Store and retrieve one large DICOM instance through the local host; report time and memory.

    .venv/bin/python -m bench.store_large [--size-mib 200] [--runs 3] [--results bench/RESULTS.md]

On its own Azurite and host (testkit/stack.py), makes a valid Secondary Capture instance with
`--size-mib` of random OB pixel data, then per run: STOW-RS it (the request body streamed from a
file), WADO-RS it back as application/dicom and as multipart/related, and checks the bytes are
identical. The host's RSS is sampled every 10 ms to give each phase's peak. Then the same code is
called alone in a fresh process, to tell what our functions hold from what the host around them holds.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import random
import tempfile
import time
from pathlib import Path

import psutil
import requests

from bench.measure import MIB, PeakRss, median, rss
from bench.report import add_results_argument, report, table
from shared.stores.blob import stow, wado
from shared.stores.blob.store import DicomStore
from testkit.instances import make_dataset, stow_content_type, write
from testkit.stack import stack

BOUNDARY = "bench-boundary"
MULTIPART = 'multipart/related; type="application/dicom"'


def make_body(folder: Path, size: int) -> tuple[Path, tuple[str, str, str], str]:
    """A STOW body file holding one instance with `size` bytes of pixel data; its UIDs and hash."""
    ds = make_dataset(pixel_bytes=0)
    ds.PixelData = random.randbytes(size)
    instance, body = folder / "large.dcm", folder / "body.multipart"
    write(ds, instance)
    digest = hashlib.sha256()
    with open(body, "wb") as out, open(instance, "rb") as source:
        out.write(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        while chunk := source.read(8 * MIB):
            digest.update(chunk)
            out.write(chunk)
        out.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    instance.unlink()
    return body, (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID), digest.hexdigest()


def retrieve(url: str, accept: str) -> str:
    """sha256 of the DICOM bytes sent back for `accept` (multipart framing stripped)."""
    response = requests.get(url, headers={"Accept": accept}, timeout=600)
    response.raise_for_status()
    content = response.content
    if accept == MULTIPART:
        boundary = response.headers["Content-Type"].split("boundary=")[1].strip('"')
        content = content[content.index(b"\r\n\r\n") + 4: content.rindex(f"\r\n--{boundary}--".encode())]
    return hashlib.sha256(content).hexdigest()


def through_host(host, body: Path, uids: tuple[str, str, str], digest: str) -> dict[str, float]:
    """One run: seconds, MiB/s and the host's peak RSS (absolute and above idle) of each phase."""
    pid = host.process.pid
    url = f"{host.base_url}/studies/{'/series/'.join(uids[:2])}/instances/{uids[2]}"
    size = body.stat().st_size / MIB
    idle = rss(pid)
    figures = {"idle host RSS MiB": idle / MIB}
    phases = (("store", None), ("retrieve application/dicom", "application/dicom"), ("retrieve multipart", MULTIPART))
    for phase, accept in phases:
        with PeakRss(pid) as peak:
            started = time.perf_counter()
            if accept is None:
                with open(body, "rb") as stream:
                    response = requests.post(f"{host.base_url}/studies", data=stream, timeout=600,
                                             headers={"Content-Type": stow_content_type(BOUNDARY)})
                if response.status_code != 200:
                    raise SystemExit(f"store failed: {response.status_code} {response.text[:500]}")
            elif retrieve(url, accept) != digest:
                raise SystemExit(f"{phase}: the bytes sent back are not the instance stored")
            seconds = time.perf_counter() - started
        figures.update({f"{phase}: s": seconds, f"{phase}: MiB/s": size / seconds,
                        f"{phase}: host peak RSS MiB": peak.peak / MIB,
                        f"{phase}: host peak above idle MiB": (peak.peak - idle) / MIB})
    return figures


def own_peak(body: Path, connection_string: str, uids: tuple[str, str, str], accept: str | None, results) -> None:
    """In a fresh process: how far RSS rises while STOW (`accept` None) or WADO runs, as the host calls it."""
    store = DicomStore.from_settings(
        {"AzureWebJobsStorage": connection_string, "DicomStore__ContainerName": "bench-large-direct"}
    )
    store.ensure_container()
    if accept is None:
        data = body.read_bytes()  # the host hands the body over already read
        results.put(rise(lambda: stow.store_request(store, data, stow_content_type(BOUNDARY), "http://bench")))
    else:
        results.put(rise(lambda: wado.retrieve(store, *uids, accept)))


def rise(call) -> float:
    """MiB by which this process's peak RSS (Linux VmHWM, reset first) exceeds its RSS before `call`."""
    Path("/proc/self/clear_refs").write_text("5")
    before = psutil.Process().memory_info().rss
    call()
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    return (peak - before) / MIB


def in_fresh_processes(body: Path, connection_string: str, uids: tuple[str, str, str]) -> dict[str, float]:
    """The function's own peak of each phase, each in a process of its own (so no heap is reused)."""
    context = multiprocessing.get_context("spawn")
    figures = {}
    for phase, accept in (("store", None), ("retrieve application/dicom", "application/dicom"),
                          ("retrieve multipart", MULTIPART)):
        results = context.Queue()
        child = context.Process(target=own_peak, args=(body, connection_string, uids, accept, results))
        child.start()
        figures[f"{phase}: the function's own peak MiB"] = results.get(timeout=600)
        child.join()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    add_results_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="store-large-") as temp:
        body, uids, digest = make_body(Path(temp), args.size_mib * MIB)
        limit = str(body.stat().st_size + 64 * MIB)  # the host's (and Azure's) 100 MB default is too small
        with stack({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": limit}) as running:
            runs = [through_host(running.host, body, uids, digest) for _ in range(args.runs)]
            once = in_fresh_processes(body, running.connection_string, uids)
    rows = [(name, median([run[name] for run in runs]), ", ".join(f"{run[name]:.1f}" for run in runs))
            for name in runs[0]]
    rows += [(name, value, "1 run") for name, value in once.items()]
    notes = (
        "Host peak: the host process's highest RSS, sampled every 10 ms; above idle: minus its RSS just "
        "before the run. The function's own peak: how far RSS rises (VmHWM, reset before each call) while "
        "`shared.stores.blob.stow.store_request` / `shared.stores.blob.wado.retrieve` run alone, each in a fresh process, on the "
        "same Azurite; for STOW the request body is already in memory, as the host hands it over."
    )
    report(f"Store and retrieve one {args.size_mib} MiB instance through the local host",
           table(["figure", "median", "runs"], rows), notes, args.results)


if __name__ == "__main__":
    main()
