"""Throughput of research outputs: a transcoding export against a plain decode/re-encode script, and each
format against a plain copy, side by side in one run.

    .venv/bin/python -m bench.outputs [--runs 3] [--copies 10]

Seeds the store with `--copies` copies (new UIDs) of every compressed file pydicom ships that its decoders
read (JPEG, JPEG-LS, JPEG 2000, RLE, Deflated...). Per run, in rotating order: a plain copy, a transcoding
export to Explicit VR Little Endian, a PNG and a JPEG export; and the plain script: the same files read from
memory, decoded and written as Explicit VR Little Endian by pydicom with the same plugins, in
`Export__MaxParallelThreads` (5) threads, no storage. Prints and appends the medians of files/s.
"""

from __future__ import annotations

import argparse
import io
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor

import pydicom
from pydicom.uid import ExplicitVRLittleEndian

from bench.measure import median, repeat, run_export
from bench.report import add_results_argument, report, table
from testkit.seed import uid
from testkit.shipped import load, with_pixels
from testkit.stack import Stack, stack

EXPORTS = {"copy as stored": None,
           "transcode to Explicit VR LE": {"output": {"format": "dicom", "transferSyntax": ExplicitVRLittleEndian}},
           "png": {"output": {"format": "png"}}, "jpeg": {"output": {"format": "jpeg"}}}


def files(copies: int) -> list[bytes]:
    """`copies` copies of each compressed shipped file, each with its own UIDs."""
    made = []
    for path in with_pixels(compressed=True):
        for _ in range(copies):
            ds, _ = load(path)
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = uid(), uid(), uid()
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
    store = bench.store()
    studies = []
    for data in made:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        studies.append(str(ds.StudyInstanceUID))
        name = f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
        store.upload_blob(name, io.BytesIO(data), overwrite=True)
    return studies


def script(made: list[bytes]) -> float:
    """files/s of decoding and re-encoding in memory with the same libraries."""
    def one(data: bytes) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data))
            try:
                ds.decompress(generate_instance_uid=False)
                ds.save_as(io.BytesIO(), enforce_file_format=True)
            except Exception:  # noqa: BLE001 - a file the export also skips
                return

    started = time.perf_counter()
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(one, made))
    return len(made) / (time.perf_counter() - started)


def one_run(bench: Stack, studies: list[str], made: list[bytes], run: int) -> dict:
    names = list(EXPORTS)
    names = names[run % len(names):] + names[:run % len(names)]
    figures = {}
    for name in names:
        container = f"out-{uuid.uuid4().hex[:12]}"
        target = bench.container(container)
        done = run_export(bench.host, studies, bench.connection_string, container, extra=EXPORTS[name])
        figures[name] = len(studies) / done.seconds
        target.delete_container()
    figures["script"] = script(made)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--copies", type=int, default=10)
    add_results_argument(parser)
    args = parser.parse_args()
    made = files(args.copies)
    with stack() as bench:
        studies = seed(bench, made)
        runs = repeat(args.runs, lambda run: one_run(bench, studies, made, run))
    plain = median([r["copy as stored"] for r in runs])
    rows = [[name, median([r[name] for r in runs]), f"{median([r[name] / r['copy as stored'] for r in runs]):.2f}"]
            for name in EXPORTS]
    rows.append(["plain script: decode + write Explicit VR LE, 5 threads, in memory", median(
        [r["script"] for r in runs]), "-"])
    report("Research outputs: files/s of each format, and transcoding against a plain script",
           table(["export", "files/s", "/ copy as stored"], rows),
           notes=(f"{len(made)} files ({args.copies} copies of each compressed file pydicom ships that its decoders "
                  f"read), one study each; medians of {args.runs} runs, exports in rotating order; copy as "
                  f"stored at {plain:.1f} files/s. Export times from the POST to the end the host recorded; "
                  "published defaults; Azurite is store and destination. Transcoding export / script: "
                  f"{median([r['transcode to Explicit VR LE'] / r['script'] for r in runs]):.2f}."),
           results=args.results)


if __name__ == "__main__":
    main()
