"""What writing one batch's skip lines to errors.log costs, as it is written now against the append it replaced.

    .venv/bin/python -m bench.errors_log [--runs 5] [--batches 40]

Per run, on one Azurite, `--batches` sequential writes of 3 lines each: to a fresh log through
`ErrorLog.write` (a block keyed by the batch, committed at once: stage, properties, block list, commit),
and to a fresh append blob as the log was before (one append block). Prints and appends to bench/RESULTS.md
the median milliseconds per write. Only a batch that skips something writes; the others write nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from azure.storage.blob import ContainerClient

from bench.measure import median
from bench.report import add_results_argument, report, table
from devhost.azurite import Azurite, free_port
from shared.export.errors_log import ErrorEntry, ErrorLog, batch_key

ENTRIES = [ErrorEntry(f"1.2/1.3/1.{k}", "gone from the store after the export listed it") for k in range(3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    add_results_argument(parser)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="errors-log-"))
    azurite = Azurite(folder / "azurite", free_port(), log_path=folder / "azurite.log").start()
    found: dict[str, list[float]] = {"keyed block (now)": [], "append block (before)": []}
    try:
        container = ContainerClient.from_connection_string(azurite.connection_string, "bench")
        container.create_container()
        data = b"".join(entry.line().encode() for entry in ENTRIES)
        for run in range(args.runs):
            log = ErrorLog(container, f"keyed{run}")
            log.create()
            started = time.perf_counter()
            for batch in range(args.batches):
                log.write(batch_key(1, batch), ENTRIES)
            found["keyed block (now)"].append((time.perf_counter() - started) / args.batches * 1000)
            appended = container.get_blob_client(f"append{run}/errors.log")
            appended.create_append_blob()
            started = time.perf_counter()
            for _ in range(args.batches):
                appended.append_block(data)
            found["append block (before)"].append((time.perf_counter() - started) / args.batches * 1000)
    finally:
        azurite.stop()
    report("errors.log: one batch's skip lines, keyed block against append",
           table(["write", "ms per write"], [[way, f"{median(ms):.1f}"] for way, ms in found.items()]),
           notes=f"Medians of {args.runs} runs of {args.batches} sequential writes of 3 lines each, one Azurite.",
           results=args.results)


if __name__ == "__main__":
    main()
