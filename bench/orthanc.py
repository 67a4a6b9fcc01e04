"""Export from Orthanc against a plain WADO-RS-and-upload copy of the same instances, side by side in one run;
and the host's memory while it exports one 1 GiB instance from Orthanc.

    .venv/bin/python -m bench.orthanc [--runs 3] [--files 2000] [--studies 20] [--kib 256] [--large-mib 1024]

Starts Orthanc with its DICOMweb plugin (testkit/orthanc.py: free loopback port, basic auth), Azurite,
and the local host with DicomStore__Type=dicomweb and the published defaults (BatchSize 100,
MaxParallelBatches 10, MaxParallelThreads 5). Stores `--files` instances of `--kib` KiB in `--studies`
studies through STOW-RS. Per run, in alternating order:
- baseline: QIDO-RS `/studies/{s}/instances` of each study, then a plain pool of MaxParallelBatches ×
  MaxParallelThreads threads (50) that each GET the instance with WADO-RS (`transfer-syntax=*`, whole reply
  in memory, the part cut out) and upload it to a fresh container (one requests session, pools of 64,
  GETs retried up to 3 times as the export's are);
- export: POST /export of the studies to another fresh container, timed from the POST to the end the host
  recorded in its task hub.
Then one instance of `--large-mib` MiB is stored (Orthanc's REST API, streamed from a file) and exported
`--runs` times while the host's RSS (process and children) is sampled every 10 ms.
Prints and appends to bench/RESULTS.md the medians; targets: export ≥ 0.9× the baseline's files/s, and at
most 150 MiB above the idle host for the large instance.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from azure.storage.blob import ContainerClient
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bench.measure import KIB, MIB, PeakRss, median, repeat, run_export, settle_rss
from bench.memory import write_large_instance
from bench.report import add_results_argument, report, table
from testkit.orthanc import Orthanc
from testkit.seed import dicom_file, uid
from testkit.stack import Stack, stack

CONCURRENCY = 10 * 5
SETTINGS = {"Export__BatchSize": "100", "Export__MaxParallelBatches": "10", "Export__MaxParallelThreads": "5"}
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
RATIO_TARGET, MEMORY_TARGET_MIB = 0.9, 150


def store_instances(orthanc: Orthanc, studies: int, files: int, size: int) -> list[str]:
    """`files` instances of about `size` bytes over `studies` studies, through STOW-RS; the study UIDs."""
    study_uids = [uid() for _ in range(studies)]
    made = [dicom_file(study_uids[n % studies], f"{study_uids[n % studies]}.1", uid(), size) for n in range(files)]
    batches = [made[i:i + 20] for i in range(0, len(made), 20)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda batch: orthanc.stow(*batch), batches))
    return study_uids


def plain_copy(orthanc: Orthanc, studies: list[str], target: ContainerClient) -> int:
    """The yardstick: QIDO each study, then WADO-RS each instance whole and upload it, 50 at a time."""
    session = requests.Session()  # as a plain client would: a pool as large as its threads, GETs retried
    session.mount("http://", HTTPAdapter(pool_maxsize=64, max_retries=Retry(total=3, backoff_factor=0.5)))
    session.auth = orthanc.auth
    base = orthanc.dicomweb_url
    names = []
    for study in studies:
        rows = session.get(f"{base}/studies/{study}/instances", headers={"Accept": "application/dicom+json"},
                           timeout=60).json()
        names += [f"{study}/{r['0020000E']['Value'][0]}/{r['00080018']['Value'][0]}" for r in rows]

    def copy(name: str) -> None:
        study, series, sop = name.split("/")
        r = session.get(f"{base}/studies/{study}/series/{series}/instances/{sop}", headers={"Accept": ACCEPT},
                        timeout=120)
        r.raise_for_status()
        boundary = re.search(r'boundary="?([^";]+)', r.headers["Content-Type"]).group(1).encode()
        body = r.content
        start = body.index(b"\r\n\r\n") + 4
        data = body[start:body.rindex(b"\r\n--" + boundary)]
        target.upload_blob(f"results/{name}.dcm", data, overwrite=True, max_concurrency=1)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(copy, names))
    return len(names)


def measure(bench: Stack, orthanc: Orthanc, studies: list[str], files: int, size: int, run: int) -> dict:
    figures = {}
    for side in (("baseline", "export") if run % 2 == 0 else ("export", "baseline")):
        name = f"{side}-{uuid.uuid4().hex[:10]}"
        target = bench.container(name)
        started = time.perf_counter()
        if side == "baseline":
            copied = plain_copy(orthanc, studies, target)
            seconds = time.perf_counter() - started
        else:
            done = run_export(bench.host, studies, bench.connection_string, name)
            copied, seconds = done.view["results"]["exported"], done.seconds
        if copied != files:
            raise SystemExit(f"{side} copied {copied} of {files} instances")
        figures[f"{side}_files_s"] = files / seconds
        target.delete_container()
    figures["ratio"] = figures["export_files_s"] / figures["baseline_files_s"]
    figures["mb_s"] = figures["export_files_s"] * size / 1e6
    return figures


def large_instance_peak(bench: Stack, orthanc: Orthanc, megabytes: int, runs: int,
                        meta_slack: int = 0) -> tuple[list[list], float]:
    """The host's memory while exporting one instance of `megabytes`; a copy may differ in size from the stored
    file by `meta_slack` bytes (a DIMSE copy carries File Meta of its own)."""
    study = uid()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.dcm"
        write_large_instance(path, study, f"{study}.1", f"{study}.1.1", megabytes * MIB)
        size = path.stat().st_size
        with open(path, "rb") as f:
            r = requests.post(f"{orthanc.url}/instances", data=f, auth=orthanc.auth, timeout=600,
                              headers={"Content-Length": str(size)})
        r.raise_for_status()
    idle = settle_rss(bench.host.process.pid, 2.0)

    def once(_: int) -> dict:
        name = f"large-{uuid.uuid4().hex[:10]}"
        target = bench.container(name)
        with PeakRss(bench.host.process.pid) as sampled:
            done = run_export(bench.host, [study], bench.connection_string, name)
        copied = target.get_blob_client(f"{done.operation_id}/results/{study}/{study}.1/{study}.1.1.dcm")
        if abs(copied.get_blob_properties().size - size) > meta_slack:
            raise SystemExit("the large instance was not copied whole")
        target.delete_container()
        return {"seconds": done.seconds, "peak_mib": sampled.peak / MIB, "above_idle_mib": (sampled.peak - idle) / MIB}

    found = repeat(runs, once)
    above = median([r["above_idle_mib"] for r in found])
    return [[f"one instance of {size / MIB:,.0f} MiB", f"{median([r['seconds'] for r in found]):.1f}",
             f"{idle / MIB:.0f}", f"{median([r['peak_mib'] for r in found]):.0f}", f"{above:.0f}",
             "yes" if above <= MEMORY_TARGET_MIB else f"no (+{above - MEMORY_TARGET_MIB:.0f} MiB)"]], above


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--kib", type=int, default=256)
    parser.add_argument("--large-mib", type=int, default=1024)
    add_results_argument(parser)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="orthanc-bench-"))
    orthanc = Orthanc(folder / "orthanc").start()
    settings = {**SETTINGS, **orthanc.app_settings()}
    sections = []
    try:
        if args.files:
            with stack(settings) as bench:
                print(f"storing {args.files} instances of {args.kib} KiB in Orthanc ...", flush=True)
                studies = store_instances(orthanc, args.studies, args.files, args.kib * KIB)
                runs = repeat(args.runs, lambda run: measure(bench, orthanc, studies, args.files, args.kib * KIB, run))
            plain = median([r["baseline_files_s"] for r in runs])
            sections.append(table(["copy", "files/s", "MB/s"], [
                ["plain WADO-RS + upload, 50 threads", plain, plain * args.kib * KIB / 1e6],
                ["export from Orthanc", median([r["export_files_s"] for r in runs]), median([r["mb_s"] for r in runs])],
                [f"export / plain (median of per-run ratios; target ≥ {RATIO_TARGET})",
                 f"{median([r['ratio'] for r in runs]):.2f}", ""]]))
        if args.large_mib:
            with stack(settings) as bench:  # a fresh host: its idle memory is the reference
                print(f"exporting one instance of {args.large_mib} MiB ...", flush=True)
                rows, _ = large_instance_peak(bench, orthanc, args.large_mib, args.runs)
            sections.append(table(["export", "seconds", "idle host MiB", "peak MiB", "peak above idle MiB",
                                   f"≤ {MEMORY_TARGET_MIB} MiB"], rows))
    finally:
        orthanc.stop()
        shutil.rmtree(folder, ignore_errors=True)
    report("Export from Orthanc (DICOMweb store)", "\n\n".join(sections), notes=(
        f"Medians of {args.runs} runs; {args.files} instances of {args.kib} KiB in {args.studies} studies, "
        "stored in Orthanc 1.10 with its DICOMweb plugin 1.7 (Debian bookworm) on the same machine as Azurite "
        "and the host. Order alternates per run. RSS of the host (and children) sampled every 10 ms."),
        results=args.results)


if __name__ == "__main__":
    sys.exit(main())
