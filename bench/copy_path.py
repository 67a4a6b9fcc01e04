"""The export's copy step against the raw copy, in one process and without the host: what each file costs.

    .venv/bin/python -m bench.copy_path [--runs 5] [--small 2000] [--small-kib 128]

Seeds one Azurite as bench/throughput.py does, lists the files once as the expand activity does, then per run,
in rotating order, copies all of them to a fresh container three ways with 50 copies in flight:
- raw: the yardstick of bench/throughput.py (download each file, upload it);
- raw + hashing: the same, also computing each file's MD5 and SHA-256, as the export must (issue 13);
- copy step: `BatchCopier.copy` over the listed batches, 10 at a time with 5 threads each, as 10 copy
  activities run them (ETag-free reads, Content-MD5, manifest lines, skip policy), but called directly.
Prints and appends to bench/RESULTS.md the medians of wall and CPU seconds (this process, all threads). The
difference between the copy step here and the export in bench/throughput.py is what the host, the durable
engine, the worker and the generations add; the difference between raw and the copy step is the copy path.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from azure.storage.blob import ContainerClient

from bench.measure import KIB, cpu_seconds, median
from bench.report import add_results_argument, report, table
from devhost.azurite import Azurite, free_port
from shared.export.copy import TRANSFER_OPTIONS, BatchCopier
from shared.export.expand import expand
from shared.stores.blob.store import DicomStore
from shared.uids import parse_identifier
from testkit.seed import seed
from testkit.stack import STORE_CONTAINER, container_client

BATCHES, THREADS = 10, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--small", type=int, default=2000, help="instances, in 20 studies")
    parser.add_argument("--small-kib", type=int, default=128, help="size of each instance")
    add_results_argument(parser)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="copy-path-"))
    azurite = Azurite(folder / "azurite", free_port(), log_path=folder / "azurite.log").start()
    names = (f"copy{n:06d}" for n in itertools.count())

    def container(name: str) -> ContainerClient:
        return container_client(azurite.connection_string, name, **TRANSFER_OPTIONS)

    try:
        source = container(STORE_CONTAINER)
        seeded = seed(source, 20, args.small // 20, args.small_kib * KIB)
        store = DicomStore(source)
        batches = expand(store, [parse_identifier(s) for s in seeded.studies], None, 100,
                         -(-args.small // 100)).batches  # the export's default BatchSize

        def raw(hashing: bool) -> Callable[[], None]:
            def run() -> None:
                target = container(next(names))

                def one(name: str) -> None:
                    data = source.download_blob(name, max_concurrency=1).readall()
                    if hashing:
                        hashlib.md5(data, usedforsecurity=False).digest()
                        hashlib.sha256(data).digest()
                    target.upload_blob(name, data, overwrite=True, max_concurrency=1)

                with ThreadPoolExecutor(BATCHES * THREADS) as pool:
                    list(pool.map(one, seeded.files))
            return run

        def copy_step() -> None:
            copier = BatchCopier(store, container(next(names)), "op", describe_fault=str, threads=THREADS)
            with ThreadPoolExecutor(BATCHES) as pool:
                list(pool.map(copier.copy, batches))

        ways = {"raw copy": raw(False), "raw copy + MD5 and SHA-256": raw(True), "the export's copy step": copy_step}
        found: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
        order = list(ways)
        me = psutil.Process()
        for way in order:  # warm-up
            ways[way]()
        for run in range(args.runs):
            for way in order[run % 3:] + order[:run % 3]:
                cpu, started = cpu_seconds(me), time.perf_counter()
                ways[way]()
                found[way].append((time.perf_counter() - started, cpu_seconds(me) - cpu))
            print(f"  run {run + 1}/{args.runs}: " + ", ".join(
                f"{way} {found[way][-1][0]:.1f} s / {found[way][-1][1]:.1f} s CPU" for way in order), flush=True)
    finally:
        azurite.stop()
    raw_wall = median([w for w, _ in found["raw copy"]])
    rows = [[way, f"{median([w for w, _ in runs]):.2f}", f"{median([c for _, c in runs]):.2f}",
             f"{len(seeded.files) / median([w for w, _ in runs]):.0f}",
             f"{raw_wall / median([w for w, _ in runs]):.2f}"] for way, runs in found.items()]
    report(
        f"The copy step against the raw copy, in one process ({args.small_kib} KiB)",
        table(["copier", "wall s", "CPU s", "files/s", "÷ raw copy"], rows),
        notes=(f"Medians of {args.runs} runs, order rotating; {len(seeded.files):,} files of {args.small_kib} KiB "
               f"in 20 studies, one Azurite, {BATCHES * THREADS} copies in flight, CPU of this process."),
        results=args.results,
    )


if __name__ == "__main__":
    main()
