"""Throughput of a de-identified export against a plain one of the same files, side by side in one run.

    .venv/bin/python -m bench.deidentify [--runs 3] [--files 1000] [--kib 256] [--studies 10]

Seeds the store (one Azurite) with two sets of `--files` DICOM instances of about `--kib` KiB in
`--studies` studies: one with a minimal header (a dozen attributes), one with the identifying test
corpus' header (every attribute of PS3.15 Table E.1-1 that can be filled, ~17 KiB, nested
sequences and private tags: testkit/corpus.py). Per run and per set, in alternating order,
exports it plainly and de-identified (Basic Profile) to fresh containers with the published
defaults; prints and appends to bench/RESULTS.md the medians of files/s for each and the
de-identified/plain ratio (the median of the per-run ratios).
"""

from __future__ import annotations

import argparse
import io
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.measure import KIB, median, repeat, run_export
from bench.report import add_results_argument, report, table
from testkit.corpus import identifying_instance
from testkit.seed import dicom_file, uid
from testkit.stack import Stack, stack

DEID = {"profile": "basic"}


def corpus_file(study: str, series: str, sop: str, size: int) -> bytes:
    """An instance with the corpus' identifying header, padded with pixel data to about `size` bytes."""
    header = len(identifying_instance(1, study, series, sop, pixel_bytes=0).data)
    pad = max(0, size - header)
    return identifying_instance(1, study, series, sop, pixel_bytes=pad + pad % 2).data


def seed(bench: Stack, make, files: int, studies: int, size: int) -> list[str]:
    store = bench.store()
    study_uids = [uid() for _ in range(studies)]
    names = [(s, f"{s}.1", f"{s}.1.{n}") for s in study_uids for n in range(files // studies)]

    def upload(parts: tuple[str, str, str]) -> None:
        store.upload_blob("/".join(parts) + ".dcm", io.BytesIO(make(*parts, size)), overwrite=True)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(upload, names))
    return study_uids


def one_run(bench: Stack, studies: list[str], files: int, run: int) -> dict:
    """Both exports of one run, plain first on even runs and de-identified first on odd ones."""
    seconds = {}
    for deid in ((None, DEID) if run % 2 == 0 else (DEID, None)):
        name = f"deid-{uuid.uuid4().hex[:12]}"
        target = bench.container(name)
        done = run_export(bench.host, studies, bench.connection_string, name, deidentification=deid)
        if done.view["results"]["exported"] != files:
            raise SystemExit(f"export copied {done.view['results']}, expected {files}")
        seconds["deid" if deid else "plain"] = done.seconds
        target.delete_container()
    return {"plain_files_s": files / seconds["plain"], "deid_files_s": files / seconds["deid"],
            "ratio": seconds["plain"] / seconds["deid"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--kib", type=int, default=256)
    parser.add_argument("--studies", type=int, default=10)
    add_results_argument(parser)
    args = parser.parse_args()
    files = args.files // args.studies * args.studies
    rows = []
    with stack() as bench:
        for label, make in (("minimal header", dicom_file), ("Table E.1-1 corpus header", corpus_file)):
            print(f"seeding {files} instances of {args.kib} KiB, {label} ...", flush=True)
            studies = seed(bench, make, files, args.studies, args.kib * KIB)
            runs = repeat(args.runs, lambda run, studies=studies: one_run(bench, studies, files, run))
            rows.append([f"{files:,} × {args.kib} KiB, {label}", median([r["plain_files_s"] for r in runs]),
                         median([r["deid_files_s"] for r in runs]), f"{median([r['ratio'] for r in runs]):.2f}"])
    report(
        "De-identification: export throughput, de-identified against plain",
        table(["files", "plain files/s", "de-identified files/s", "de-identified / plain"], rows),
        notes=(
            f"Medians of {args.runs} runs; in each run both exports of a set run back to back, their order "
            "alternating between runs. Times from the POST to the end the host recorded. Published defaults "
            "(BatchSize 100, MaxParallelBatches 10, MaxParallelThreads 5); Azurite is store and destination; "
            "plain exports stream (Export__CopyMode stream), as de-identified ones always do."
        ),
        results=args.results,
    )


if __name__ == "__main__":
    main()
