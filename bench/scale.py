"""Exports of 2 000, 10 000 and 20 000 instances: time per 1 000, task hub size on disk, host memory.

    .venv/bin/python bench/scale.py [--runs 3] [--sizes 2000,10000,20000] [--kib 2]

Seeds the store directly with the largest size in studies of 1 000 instances of `--kib` KiB, then per run
exports the first 2, 10 and 20 studies (order rotating from run to run), each to a fresh container, with
the published defaults (BatchSize 100, MaxParallelBatches 10, MaxParallelThreads 5: 1 000 instances per
generation, then continue-as-new). After each export it records the seconds per 1 000 instances (should
stay flat), the task hub database's size on disk, the history the instance holds at its end (events and
bytes: one generation's worth, whatever the export's size) and the host's RSS (peak during, and after).
Medians over the runs.
"""

from __future__ import annotations

import argparse
import sqlite3
import uuid
from contextlib import closing

from common import (
    KIB,
    MIB,
    PeakRss,
    Stack,
    add_results_argument,
    folder_size,
    median,
    report,
    rss,
    run_export,
    seed,
    settle_rss,
    stack,
    table,
    task_hub,
)

PER_STUDY = 1000


def history_of(bench: Stack, operation_id: str) -> tuple[int, int]:
    """(events, bytes) of the operation's history in the task hub: its last generation only."""
    with closing(sqlite3.connect(f"file:{task_hub(bench.host)}?mode=ro", uri=True)) as db:
        events, size = db.execute(
            "SELECT count(*), coalesce(sum(length(event)), 0) FROM history WHERE instance_id = ?",
            (operation_id,),
        ).fetchone()
    return events, size


def export(bench: Stack, studies: list[str]) -> dict:
    name = f"scale-{uuid.uuid4().hex[:12]}"
    target = bench.container(name)
    with PeakRss(bench.host.process.pid, interval=0.05) as sampled:
        done = run_export(bench.host, studies, bench.connection_string, name)
    expected = len(studies) * PER_STUDY
    if done.view["results"]["exported"] != expected:
        raise SystemExit(f"export copied {done.view['results']}, expected {expected}")
    events, size = history_of(bench, done.operation_id)
    figures = {
        "per_1000_s": done.seconds / (expected / 1000),
        "seconds": done.seconds,
        "hub_mib": task_hub(bench.host).stat().st_size / MIB,
        "history_events": events,
        "history_kib": size / KIB,
        "peak_mib": sampled.peak / MIB,
        "after_mib": rss(bench.host.process.pid) / MIB,
    }
    target.delete_container()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="2000,10000,20000")
    parser.add_argument("--kib", type=int, default=2)
    add_results_argument(parser)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with stack() as bench:
        idle = settle_rss(bench.host.process.pid, 2.0) / MIB
        print(f"seeding {max(sizes)} instances of {args.kib} KiB ...", flush=True)
        seeded = seed(bench.store(), max(sizes) // PER_STUDY, PER_STUDY, args.kib * KIB)
        found: dict[int, list[dict]] = {n: [] for n in sizes}
        for run in range(args.runs):
            for n in sizes[run % len(sizes) :] + sizes[: run % len(sizes)]:  # no size always first or last
                figures = export(bench, seeded.studies[: n // PER_STUDY])
                found[n].append(figures)
                print(
                    f"  run {run + 1}/{args.runs}, {n} instances: "
                    + ", ".join(f"{k}={v:.3g}" for k, v in figures.items()),
                    flush=True,
                )
        final_hub = folder_size(bench.hub_dir) / MIB
        final_db = task_hub(bench.host).stat().st_size / MIB
    rows = [
        [
            f"{n:,}",
            f"{median([r['seconds'] for r in found[n]]):.1f}",
            f"{median([r['per_1000_s'] for r in found[n]]):.2f}",
            f"{median([r['hub_mib'] for r in found[n]]):.1f}",
            (
                f"{median([r['history_events'] for r in found[n]]):.0f} "
                f"({median([r['history_kib'] for r in found[n]]):.0f} KiB)"
            ),
            f"{median([r['peak_mib'] for r in found[n]]):.0f}",
            f"{median([r['after_mib'] for r in found[n]]):.0f}",
        ]
        for n in sizes
    ]
    body = table(
        [
            "instances",
            "seconds",
            "seconds per 1 000",
            "task hub database MiB",
            "its history at the end",
            "host peak RSS MiB",
            "host RSS after MiB",
        ],
        rows,
    )
    report(
        "Scale: exports of growing size",
        body,
        notes=(
            f"Medians of {args.runs} runs, each run exporting every size in turn (order rotating) on one "
            f"host and one task hub ({args.runs * sum(sizes):,} instances in all). The task hub database is "
            "read after each export (its WAL, at most about 4 MiB, aside); after the last one it was "
            f"{final_db:.1f} MiB, {final_hub:.1f} MiB with WAL and shared memory. `its history at the end`: events and bytes of "
            "that export's history rows, one generation's worth whatever its size. "
            f"Idle host {idle:.0f} MiB. Instances of {args.kib} KiB in studies of {PER_STUDY:,}."
        ),
        results=args.results,
    )


if __name__ == "__main__":
    main()
