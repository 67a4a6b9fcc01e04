"""Export from a PACS over DIMSE (Orthanc's DICOM port) against a plain pynetdicom C-GET-and-upload script, and
against the same export over DICOMweb from the same Orthanc, side by side in one run; and the host's memory
while it exports one 1 GiB instance over C-GET.

    .venv/bin/python -m bench.dimse [--runs 3] [--files 300] [--studies 3] [--kib 256] [--associations 8]
                                    [--large-mib 1024]

Starts Orthanc (testkit/orthanc.py: DICOM port and DICOMweb on free loopback ports), Azurite, a host with
DicomStore__Type=dimse and one with DicomStore__Type=dicomweb, both with the published batching defaults
(BatchSize 100, MaxParallelBatches 10, MaxParallelThreads 5) and DicomStore__MaxAssociations `--associations`
(the default, 8), so the DIMSE export runs as many C-GETs at once as the script. (pynetdicom polls each
association from two threads every millisecond: 50 associations, as many as the DICOMweb bench's threads, bury
2 cores in polling on both sides.) Stores `--files` instances of `--kib` KiB in `--studies`
studies. Per run, in rotating order:
- plain: a C-FIND at IMAGE level per study, then a pool of `--associations` threads, each with its own association (kept
  for the run) proposing the instances' class in every transfer syntax, that C-GET each instance into memory
  and upload it to a fresh container;
- dimse: POST /export of the studies to the DIMSE host; dicomweb: the same to the DICOMweb host.
Then one instance of `--large-mib` MiB is stored and exported over DIMSE `--runs` times while the host's RSS
(process and children) is sampled every 10 ms. Appends the medians to bench/RESULTS.md; targets: the DIMSE
export ≥ 0.9× the plain script's files/s, and at most 150 MiB above the idle host for the large instance.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from azure.storage.blob import ContainerClient
from pydicom.dataset import Dataset
from pynetdicom import AE, build_context, build_role, evt

from bench.measure import KIB, median, repeat, run_export
from bench.orthanc import MEMORY_TARGET_MIB, RATIO_TARGET, SETTINGS, large_instance_peak, store_instances
from bench.report import add_results_argument, report, table
from shared.stores.dimse.associations import FIND, GET, TRANSFER_SYNTAXES
from testkit.orthanc import EXPORT_AE_TITLE, Orthanc
from testkit.stack import Stack, stack

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # what testkit.seed.dicom_file makes


def plain_copy(orthanc: Orthanc, studies: list[str], target: ContainerClient, threads: int) -> int:
    """The yardstick: C-FIND the instances of each study, then C-GET each into memory and upload it, `threads` at
    once, each thread on its own association."""
    ae = AE(ae_title=EXPORT_AE_TITLE)
    contexts = [build_context(FIND), build_context(GET)] + [
        build_context(SECONDARY_CAPTURE, [syntax]) for syntax in TRANSFER_SYNTAXES]
    local, opened, lock = threading.local(), [], threading.Lock()

    def association():
        if getattr(local, "association", None) is None:
            local.box = box = {}  # the handler runs on the association's own thread

            def on_store(event):
                box["received"] = event.dataset_path.read_bytes()  # the file pynetdicom wrote (meta included)
                return 0
            local.association = ae.associate("127.0.0.1", orthanc.dicom_port, contexts=contexts, ae_title="ORTHANC",
                                             ext_neg=[build_role(SECONDARY_CAPTURE, scp_role=True)],
                                             evt_handlers=[(evt.EVT_C_STORE, on_store)])
            with lock:
                opened.append(local.association)
        return local.association

    names = []
    find = association()
    for study in studies:
        query = Dataset()
        query.QueryRetrieveLevel, query.StudyInstanceUID = "IMAGE", study
        query.SeriesInstanceUID = query.SOPInstanceUID = ""
        names += [f"{study}/{row.SeriesInstanceUID}/{row.SOPInstanceUID}"
                  for status, row in find.send_c_find(query, FIND) if row is not None and status.Status == 0xFF00]

    def copy(name: str) -> None:
        study, series, sop = name.split("/")
        query = Dataset()
        query.QueryRetrieveLevel, query.StudyInstanceUID, query.SeriesInstanceUID, query.SOPInstanceUID = (
            "IMAGE", study, series, sop)
        get = association()
        statuses = [status.get("Status") for status, _ in get.send_c_get(query, GET)]
        received = local.box.pop("received", None)
        if statuses[-1] != 0 or received is None:
            raise SystemExit(f"C-GET of {name} answered {statuses}")
        target.upload_blob(f"results/{name}.dcm", received, overwrite=True, max_concurrency=1)

    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(copy, names))
    finally:
        for opened_association in opened:
            opened_association.release()
    return len(names)


def measure(bench: Stack, dicomweb_host, orthanc: Orthanc, studies: list[str], files: int, threads: int,
            run: int) -> dict:
    sides = ["plain", "dimse", "dicomweb"]
    figures = {}
    for side in sides[run % 3:] + sides[: run % 3]:
        name = f"{side}-{uuid.uuid4().hex[:10]}"
        target = bench.container(name)
        started = time.perf_counter()
        if side == "plain":
            copied = plain_copy(orthanc, studies, target, threads)
            seconds = time.perf_counter() - started
        else:
            host = bench.host if side == "dimse" else dicomweb_host
            done = run_export(host, studies, bench.connection_string, name)
            copied, seconds = done.view["results"]["exported"], done.seconds
        if copied != files:
            raise SystemExit(f"{side} copied {copied} of {files} instances")
        figures[f"{side}_files_s"] = files / seconds
        target.delete_container()
    figures["dimse_vs_plain"] = figures["dimse_files_s"] / figures["plain_files_s"]
    figures["dimse_vs_dicomweb"] = figures["dimse_files_s"] / figures["dicomweb_files_s"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--studies", type=int, default=3)
    parser.add_argument("--associations", type=int, default=8)
    parser.add_argument("--kib", type=int, default=256)
    parser.add_argument("--large-mib", type=int, default=1024)
    add_results_argument(parser)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dimse-bench-"))
    orthanc = Orthanc(folder / "orthanc").start()
    settings = {**SETTINGS, **orthanc.dimse_settings(), "DicomStore__MaxAssociations": str(args.associations)}
    sections = []
    try:
        if args.files:
            with stack(settings) as bench:
                dicomweb_host = bench.add_host(orthanc.app_settings(), name="hub-dicomweb")
                print(f"storing {args.files} instances of {args.kib} KiB in Orthanc ...", flush=True)
                studies = store_instances(orthanc, args.studies, args.files, args.kib * KIB)
                runs = repeat(args.runs, lambda run: measure(bench, dicomweb_host, orthanc, studies, args.files,
                                                                  args.associations, run))
            sections.append(table(["copy", "files/s", "MB/s"], [
                [f"plain C-GET + upload, {args.associations} associations", median([r["plain_files_s"] for r in runs]),
                 median([r["plain_files_s"] for r in runs]) * args.kib * KIB / 1e6],
                ["export over DIMSE", median([r["dimse_files_s"] for r in runs]),
                 median([r["dimse_files_s"] for r in runs]) * args.kib * KIB / 1e6],
                ["export over DICOMweb (same Orthanc)", median([r["dicomweb_files_s"] for r in runs]),
                 median([r["dicomweb_files_s"] for r in runs]) * args.kib * KIB / 1e6],
                [f"DIMSE export / plain (median of per-run ratios; target ≥ {RATIO_TARGET})",
                 f"{median([r['dimse_vs_plain'] for r in runs]):.2f}", ""],
                ["DIMSE export / DICOMweb export (median of per-run ratios)",
                 f"{median([r['dimse_vs_dicomweb'] for r in runs]):.2f}", ""]]))
        if args.large_mib:
            with stack(settings) as bench:  # a fresh host: its idle memory is the reference
                print(f"exporting one instance of {args.large_mib} MiB over DIMSE ...", flush=True)
                rows, _ = large_instance_peak(bench, orthanc, args.large_mib, args.runs, meta_slack=256)
            sections.append(table(["export", "seconds", "idle host MiB", "peak MiB", "peak above idle MiB",
                                   f"≤ {MEMORY_TARGET_MIB} MiB"], rows))
    finally:
        orthanc.stop()
        shutil.rmtree(folder, ignore_errors=True)
    report("Export from a PACS over DIMSE (Orthanc's DICOM port)", "\n\n".join(sections), notes=(
        f"Medians of {args.runs} runs; {args.files} instances of {args.kib} KiB in {args.studies} studies, "
        "stored in Orthanc 1.10 (Debian bookworm, default DicomThreadsCount and MaximumPduLength) on the same "
        "machine as Azurite and the hosts. Order rotates per run. RSS of the host (and children) sampled every "
        "10 ms."), results=args.results)


if __name__ == "__main__":
    sys.exit(main())
