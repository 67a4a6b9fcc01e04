"""Store and retrieve one large DICOM instance through the local host; report time and the host's peak memory.

    .venv/bin/python bench/store_large.py [--size-mib 200] [--runs 3] [--results bench/RESULTS.md]

Starts its own Azurite and host (`tests/hosting.py`), makes a valid Secondary Capture instance with
`--size-mib` of random OB pixel data, then per run: STOW-RS it (the request body streamed from a
file), WADO-RS it back as application/dicom and as multipart/related (streamed to a hash), and
checks the bytes are identical. The host's resident memory is sampled every 10 ms (psutil, the host
process and its children) to give each phase's peak. Then the same code is called alone in a fresh
process, to tell what our functions hold from what the host around them holds.
Medians over the runs are printed and appended to the results file.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devhost.azurite import Azurite, free_port
from shared import stow, wado
from shared.store import DicomStore
from tests.hosting import Host
from tests.store.instances import make_dataset, stow_content_type, write

MIB = 1024 * 1024
BOUNDARY = "bench-boundary"


def host_rss(pid: int) -> int:
    """Resident bytes of the host process and its children."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


@contextmanager
def peak_rss(pid: int, result: dict):
    """Sample the host's RSS while the block runs; leaves the peak in result["peak"]."""
    done = threading.Event()
    result["peak"] = host_rss(pid)

    def sample():
        while not done.is_set():
            result["peak"] = max(result["peak"], host_rss(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        result["peak"] = max(result["peak"], host_rss(pid))


def make_body(folder: Path, size: int) -> tuple[Path, str, str, str, str]:
    """A multipart STOW body file holding one instance with `size` bytes of pixel data; its UIDs and hash."""
    ds = make_dataset(pixel_bytes=size)
    ds.PixelData = random.randbytes(size)
    instance = folder / "large.dcm"
    write(ds, instance)
    body = folder / "body.multipart"
    digest = hashlib.sha256()
    with open(body, "wb") as out, open(instance, "rb") as source:
        out.write(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        while chunk := source.read(8 * MIB):
            digest.update(chunk)
            out.write(chunk)
        out.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    instance.unlink()
    return body, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, digest.hexdigest()


def retrieve(url: str, accept: str) -> tuple[str, int]:
    """Download with `accept`, hashing the DICOM bytes (the multipart framing stripped)."""
    with requests.get(url, headers={"Accept": accept}, stream=True, timeout=600) as response:
        response.raise_for_status()
        content = b"".join(response.iter_content(8 * MIB))  # in the bench process, not the host
    if accept.startswith("multipart/"):
        boundary = response.headers["Content-Type"].split("boundary=")[1].strip('"')
        start = content.index(b"\r\n\r\n") + 4
        content = content[start: content.rindex(f"\r\n--{boundary}--".encode())]
    return hashlib.sha256(content).hexdigest(), len(content)


def own_peaks(body: Path, connection_string: str, uids: tuple[str, str, str], results) -> None:
    """In a fresh process: how far resident memory rises above where it stood while the STOW and WADO
    code runs (Linux VmHWM, reset through /proc/self/clear_refs before each call).

    The request body is read first, as the host hands it over already read.
    """
    store = DicomStore.from_settings(
        {"AzureWebJobsStorage": connection_string, "DicomStore__ContainerName": "bench-large-direct"}
    )
    store.ensure_container()
    data = body.read_bytes()
    figures = {"store: the function's own peak MiB": [rise(lambda: stow.store_request(
        store, data, stow_content_type(BOUNDARY), "http://bench"))]}
    data = None  # the body is gone before retrieving, as in the host
    for accept in ("application/dicom", 'multipart/related; type="application/dicom"'):
        name = f"retrieve {accept.split(';')[0]}: the function's own peak MiB"
        figures[name] = [rise(lambda accept=accept: wado.retrieve(store, *uids, accept))]
    results.put(figures)


def rise(call) -> float:
    """MiB by which this process's peak RSS exceeds its RSS before `call` (whose result is dropped)."""
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    before = psutil.Process().memory_info().rss
    call()
    peak = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:"))
    return (peak - before) / MIB


def own_figures(body: Path, connection_string: str, uids: tuple[str, str, str]) -> dict[str, list[float]]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=own_peaks, args=(body, connection_string, uids, results))
    child.start()
    figures = results.get(timeout=600)
    child.join()
    return figures


def run(args: argparse.Namespace) -> dict:
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="store-large-") as temp:
        folder = Path(temp)
        body, study, series, sop, digest = make_body(folder, size)
        azurite = Azurite(folder / "azurite", free_port()).start()
        host = Host(ROOT, folder / "hub", env={
            "AzureWebJobsStorage": azurite.connection_string,
            "DicomStore__ContainerName": "bench-large",
            "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(size + 64 * MIB),
        })
        try:
            host.start()
            pid = host.process.pid
            url = f"{host.base_url}/studies/{study}/series/{series}/instances/{sop}"
            requests.get(url, timeout=60)  # warm up: the app's modules are imported and the store opened
            figures: dict[str, list[float]] = {}
            for _ in range(args.runs):
                idle = host_rss(pid)
                phases = {}
                with peak_rss(pid, phases.setdefault("store", {})), open(body, "rb") as stream:
                    started = time.perf_counter()
                    response = requests.post(f"{host.base_url}/studies", data=stream, timeout=600,
                                             headers={"Content-Type": stow_content_type(BOUNDARY)})
                    phases["store"]["seconds"] = time.perf_counter() - started
                if response.status_code != 200:
                    raise SystemExit(f"store failed: {response.status_code} {response.text[:500]}")
                for name, accept in (("retrieve", "application/dicom"),
                                     ("retrieve multipart", 'multipart/related; type="application/dicom"')):
                    with peak_rss(pid, phases.setdefault(name, {})):
                        started = time.perf_counter()
                        got, length = retrieve(url, accept)
                        phases[name]["seconds"] = time.perf_counter() - started
                    if got != digest:
                        raise SystemExit(f"{name}: {length} bytes came back, not the {size}-byte instance stored")
                for name, phase in phases.items():
                    figures.setdefault(f"{name} s", []).append(phase["seconds"])
                    figures.setdefault(f"{name} MiB/s", []).append(size / MIB / phase["seconds"])
                    figures.setdefault(f"{name}: host peak RSS MiB", []).append(phase["peak"] / MIB)
                    figures.setdefault(f"{name}: host peak above idle MiB", []).append((phase["peak"] - idle) / MIB)
                figures.setdefault("idle host MiB", []).append(idle / MIB)
            figures.update(own_figures(body, azurite.connection_string, (study, series, sop)))
            return figures
        finally:
            host.stop()
            azurite.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    figures = run(args)
    lines = [
        (f"\n## Store and retrieve one {args.size_mib} MiB instance through the local host "
        f"({datetime.now(UTC):%Y-%m-%d})\n"),
        (f"`.venv/bin/python bench/store_large.py --size-mib {args.size_mib} --runs {args.runs}` on "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, Azurite on loopback. "
        "Medians over the runs (each run's value listed). Host peak = the host process's highest RSS, sampled "
        "every 10 ms; above idle = minus its RSS just before the run. The function's own peak = how far "
        "RSS rises (VmHWM, reset before each call) while `shared.stow.store_request` / `shared.wado.retrieve` "
        "run alone in a fresh process on the same Azurite, the request body already in memory (as the host "
        "hands it over).\n"),
        "| figure | median | runs |",
        "| --- | ---: | --- |",
    ]
    for name, values in figures.items():
        lines.append(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.results.exists():
        args.results.write_text("# Benchmark results\n\nEach section: what was measured, the command, the figures.\n")
    with open(args.results, "a") as out:
        out.write(text)


if __name__ == "__main__":
    main()
