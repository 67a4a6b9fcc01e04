"""Throughput of research outputs: a transcoding export against plain decode/re-encode scripts, and each
format against a plain copy, side by side in one run.

    .venv/bin/python -m bench.outputs [--runs 3] [--copies 10] [--studies 10] [--profile FILE]

Seeds the store (Azurite) with `--copies` copies (new UIDs) of every compressed file pydicom ships that its
decoders read (JPEG, JPEG-LS, JPEG 2000, RLE...), spread over `--studies` studies. Per run, in rotating order:
four exports of those studies (a plain copy, a transcoding to Explicit VR Little Endian, PNG, JPEG) and three
plain scripts that transcode the same files with the same libraries (pydicom `decompress` then `save_as`
with the plugins in requirements.txt):
- `script, store to store`: what a user would write instead (bench/throughput.py's list-and-copy script with
  a transcoding step): list each study in the same store, download each file, transcode it, upload it to a
  fresh container of the same Azurite, 50 threads (the export's MaxParallelBatches 10 x MaxParallelThreads 5).
  It does not hash, set Content-MD5, write a manifest or errors.log, checkpoint, or retry;
- `script, in memory`: only the transcoding, the files already in memory, nothing stored, 5 threads;
- `output step, in memory`: the export's own output step (shared/outputs: spool, parse, decode and encode
  frame by frame, read the new file out) on the same in-memory files, 5 threads: its cost against the
  script's, without storage or orchestration.
Prints and appends the medians of files/s and of the per-run ratios. `--profile` records py-spy on the host
during one more transcoding export and summarises where its time went (bench/profile_summary.py).
"""

from __future__ import annotations

import argparse
import io
import os
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian

from bench.measure import median, repeat, run_export
from bench.report import add_results_argument, report, table
from bench.throughput import CONCURRENCY, list_and_copy, profile
from shared.outputs.instance import spooled
from shared.outputs.produce import produce
from shared.outputs.spec import OutputSpec
from shared.outputs.types import NotProduced
from testkit.seed import uid
from testkit.shipped import load, with_pixels
from testkit.stack import Stack, stack

TRANSCODE = "transcode to Explicit VR LE"
SPEC = OutputSpec(transfer_syntax=ExplicitVRLittleEndian)
EXPORTS = {"copy as stored": None,
           TRANSCODE: {"output": {"format": "dicom", "transferSyntax": ExplicitVRLittleEndian}},
           "png": {"output": {"format": "png"}}, "jpeg": {"output": {"format": "jpeg"}}}


def files(copies: int, studies: int) -> list[bytes]:
    """`copies` copies of each compressed shipped file, each with its own series and SOP UIDs, in `studies` studies."""
    made: list[bytes] = []
    chosen = [uid() for _ in range(studies)]
    for path in with_pixels(compressed=True):
        for _ in range(copies):
            ds, _ = load(path)
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = chosen[len(made) % studies], uid(), uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            out = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    ds.save_as(out, enforce_file_format=True)
                except TypeError:  # a file pydicom cannot write back as read (a raw element without VR)
                    break
            made.append(out.getvalue())
    return made


def seed(bench: Stack, made: list[bytes]) -> list[str]:
    """Store the files; their studies."""
    store = bench.store()
    studies = set()
    for data in made:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        studies.add(str(ds.StudyInstanceUID))
        store.upload_blob(f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm", io.BytesIO(data),
                          overwrite=True)
    return sorted(studies)


def transcoded(data: bytes) -> bytes | None:
    """The file decoded and written as Explicit VR Little Endian by pydicom; None when it cannot be."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data))
        try:
            ds.decompress(generate_instance_uid=False)
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
        except Exception:  # noqa: BLE001 - a file the export also skips
            return None
    return out.getvalue()


def timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def in_memory(made: list[bytes], transcode: Callable[[bytes], object]) -> None:
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(transcode, made))


def output_step(data: bytes) -> None:
    """The export's own output step (shared/outputs) on one file, in memory: spool, decode, encode, read out."""
    try:
        with spooled([data]) as instance:
            for file in produce(SPEC, instance):
                for _ in file.chunks:
                    pass
    except NotProduced:
        return


SCRIPTS = ["script, store to store", "script, in memory", "output step, in memory"]


def one_run(bench: Stack, studies: list[str], made: list[bytes], run: int) -> dict:
    steps = [*EXPORTS, *SCRIPTS]
    steps = steps[run % len(steps):] + steps[:run % len(steps)]
    figures = {}
    store = bench.store(CONCURRENCY + 8)
    for step in steps:
        container = f"out-{uuid.uuid4().hex[:12]}"
        target = bench.container(container, CONCURRENCY + 8)
        if step == "script, store to store":
            seconds = timed(lambda target=target: list_and_copy(store, target, studies, CONCURRENCY, transcoded))
        elif step == "script, in memory":
            seconds = timed(lambda: in_memory(made, transcoded))
        elif step == "output step, in memory":
            seconds = timed(lambda: in_memory(made, output_step))
        else:
            seconds = run_export(bench.host, studies, bench.connection_string, container, extra=EXPORTS[step]).seconds
        figures[step] = len(made) / seconds
        target.delete_container()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--studies", type=int, default=10)
    parser.add_argument("--profile", metavar="FILE", type=Path,
                        help="after the runs, record py-spy on the host during one more transcoding export")
    add_results_argument(parser)
    args = parser.parse_args()
    made = files(args.copies, args.studies)
    load = os.getloadavg()
    with stack() as bench:
        studies = seed(bench, made)
        runs = repeat(args.runs, lambda run: one_run(bench, studies, made, run))
        profiled = profile(bench, studies, len(made), args.profile, EXPORTS[TRANSCODE]) if args.profile else ""
    load_after = os.getloadavg()
    rows = [[name, f"{median([r[name] for r in runs]):.1f}",
             f"{median([r[name] / r['copy as stored'] for r in runs]):.2f}",
             f"{median([r[name] / r['script, store to store'] for r in runs]):.2f}",
             f"{median([r[name] / r['script, in memory'] for r in runs]):.2f}"]
            for name in [*EXPORTS, *SCRIPTS]]
    report("Research outputs: files/s of each format, and transcoding against plain scripts",
           table(["copier", "files/s", "/ copy as stored", "/ script, store to store", "/ script, in memory"], rows),
           notes=(f"{len(made)} files ({args.copies} copies of each compressed file pydicom ships that its decoders "
                  f"read, {sum(map(len, made)) / len(made) / 1024:.0f} KiB on average) in {len(studies)} studies; medians of "
                  f"{args.runs} runs and of the per-run ratios, steps in rotating order. Export times from the POST "
                  "to the end the host recorded; published defaults (BatchSize 100, MaxParallelBatches 10, "
                  "MaxParallelThreads 5); Azurite is store and destination. The scripts are described in "
                  f"bench/outputs.py. Load average (1, 5, 15 min) before: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}; "
                  f"after: {load_after[0]:.1f}, {load_after[1]:.1f}, {load_after[2]:.1f} (2 cores shared)."),
           results=args.results)
    if profiled:
        report("Where the host's time goes during a transcoding export (py-spy)", profiled, results=args.results)


if __name__ == "__main__":
    main()
