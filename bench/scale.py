"""Exports of 2 000 to 100 000 instances: seconds per 1 000, task hub size, host memory, status latency.

    .venv/bin/python -m bench.scale [--runs 1] [--sizes 2000,10000,20000,50000,100000] [--kib 2]

Seeds the store with the largest size, in studies of 1 000 instances of `--kib` KiB put straight into the
store's container (`testkit.seed.seed`), then per run exports the first n / 1 000 studies for each size n (order
rotating from run to run), each to a fresh container of a second Azurite, deleted afterwards (Azurite's
writes cost it more the more blobs it holds, so the destinations must not share the store's emulator), with
the published defaults (BatchSize 100, MaxParallelBatches 10, MaxParallelThreads 5: 1 000 instances per
generation, then continue-as-new). Per export it records:
- seconds per 1 000 instances (the target: flat from the smallest size to the largest), and the CPU seconds
  per 1 000 of the host, the store's Azurite and the destination's (the emulator's share, which the host's
  must not be blamed for);
- the task hub: database and WAL on disk after the export, the most history rows the running export held
  at once (sampled every second; one generation's worth whatever the export's size) and its history at
  the end;
- the host's RSS (with its children): peak during the export, and after it;
- status latency: GET /v1/operations/{id} every 0.5 s while the export runs, timed by the client;
- the lock-step of generations: the share of the export's time spent in tails (copy slots waiting for their
  generation's slowest batch) and in changes of generation (`profile_summary.timeline`, from the host log).
Medians over the runs.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import time
import uuid
from contextlib import closing

import psutil

from bench.measure import KIB, MIB, Peak, PeakRss, cpu_seconds, median, rss, run_export, settle_rss, task_hub
from bench.profile_summary import timeline
from bench.report import add_results_argument, report, table
from devhost.azurite import Azurite, free_port
from shared.connection_pool import POOL_SIZE
from testkit.seed import seed
from testkit.stack import Stack, container_client, stack

PER_STUDY = 1000


def hub_query(bench: Stack, sql: str, *args: object) -> tuple:
    with closing(sqlite3.connect(f"file:{task_hub(bench.host)}?mode=ro", uri=True)) as db:
        return db.execute(sql, args).fetchone()


def history_rows(bench: Stack) -> int:
    """History rows of every instance in the task hub (ended exports keep their last generation's)."""
    return hub_query(bench, "SELECT count(*) FROM history")[0]


def hub_on_disk(bench: Stack) -> int:
    """Bytes of the task hub database and its write-ahead log."""
    db = task_hub(bench.host)
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def export(bench: Stack, destination: Azurite, studies: list[str]) -> dict:
    name = f"scale-{uuid.uuid4().hex[:12]}"
    target = container_client(destination.connection_string, name, pool=POOL_SIZE)
    before = history_rows(bench)
    processes = [psutil.Process(p.process.pid) for p in (bench.host, bench.azurite, destination)]
    cpu = [cpu_seconds(process, children=True) for process in processes]
    with PeakRss(bench.host.process.pid, interval=0.05) as memory, Peak(lambda: history_rows(bench), 1.0) as rows:
        done = run_export(bench.host, studies, destination.connection_string, name)
    host_cpu, store_cpu, destination_cpu = (
        cpu_seconds(process, children=True) - used for process, used in zip(processes, cpu, strict=True)
    )
    expected = len(studies) * PER_STUDY
    if done.view["results"]["exported"] != expected:
        raise SystemExit(f"export copied {done.view['results']}, expected {expected}")
    events, size = hub_query(
        bench, "SELECT count(*), coalesce(sum(length(event)), 0) FROM history WHERE instance_id = ?",
        done.operation_id,
    )
    latency_ms = [s * 1000 for s in done.status_seconds]
    wall = timeline(bench.host.log(), done.operation_id)
    figures = {
        "per_1000_s": done.seconds / (expected / 1000),
        "seconds": done.seconds,
        "host_cpu_per_1000_s": host_cpu / (expected / 1000),
        "store_cpu_per_1000_s": store_cpu / (expected / 1000),
        "destination_cpu_per_1000_s": destination_cpu / (expected / 1000),
        "hub_mib": hub_on_disk(bench) / MIB,
        "history_peak_rows": rows.peak - before,
        "history_events": events,
        "history_kib": size / KIB,
        "peak_mib": memory.peak / MIB,
        "after_mib": rss(bench.host.process.pid) / MIB,
        "status_polls": len(latency_ms),
        "status_p50_ms": percentile(latency_ms, 50),
        "status_p99_ms": percentile(latency_ms, 99),
        "status_max_ms": max(latency_ms),
        "generations": wall["generations"],
        "tails_pct": 100 * wall["tails s"] / done.seconds,
        "between_pct": 100 * wall["between generations s"] / done.seconds,
    }
    target.delete_container()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--sizes", default="2000,10000,20000,50000,100000")
    parser.add_argument("--kib", type=int, default=2)
    add_results_argument(parser)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load_start = os.getloadavg()
    with stack() as bench:
        idle = settle_rss(bench.host.process.pid, 2.0) / MIB
        print(f"seeding {max(sizes):,} instances of {args.kib} KiB ...", flush=True)
        started = time.perf_counter()
        seeded = seed(bench.store(), max(sizes) // PER_STUDY, PER_STUDY, args.kib * KIB)
        seeding = time.perf_counter() - started
        print(f"  seeded in {seeding:.0f} s ({len(seeded.files) / seeding:.0f} blobs/s)", flush=True)
        found: dict[int, list[dict]] = {n: [] for n in sizes}
        destination = Azurite(bench.folder / "destination", free_port()).start()
        try:
            for run in range(args.runs):
                for n in sizes[run % len(sizes) :] + sizes[: run % len(sizes)]:  # no size always first or last
                    figures = export(bench, destination, seeded.studies[: n // PER_STUDY])
                    found[n].append(figures)
                    print(
                        f"  run {run + 1}/{args.runs}, {n} instances: "
                        + ", ".join(f"{k}={v:.3g}" for k, v in figures.items()),
                        flush=True,
                    )
        finally:
            destination.stop()
    load_end = os.getloadavg()

    def cell(n: int, key: str, fmt: str = ".0f") -> str:
        return format(median([r[key] for r in found[n]]), fmt)

    rows = [
        [
            f"{n:,}",
            cell(n, "seconds", ".1f"),
            cell(n, "per_1000_s", ".2f"),
            " / ".join(cell(n, f"{who}_cpu_per_1000_s", ".2f") for who in ("host", "store", "destination")),
            cell(n, "hub_mib", ".1f"),
            cell(n, "history_peak_rows"),
            f"{cell(n, 'history_events')} ({cell(n, 'history_kib')} KiB)",
            cell(n, "peak_mib"),
            cell(n, "after_mib"),
            f"{cell(n, 'status_p50_ms', '.1f')} / {cell(n, 'status_p99_ms', '.0f')} / {cell(n, 'status_max_ms')}",
            cell(n, "status_polls"),
            f"{cell(n, 'generations')}: {cell(n, 'tails_pct', '.1f')} % / {cell(n, 'between_pct', '.1f')} %",
        ]
        for n in sizes
    ]
    body = table(
        [
            "instances",
            "seconds",
            "seconds per 1 000",
            "CPU s per 1 000: host / store / destination",
            "task hub on disk MiB",
            "most history rows while running",
            "its history at the end",
            "host peak RSS MiB",
            "host RSS after MiB",
            "status ms p50 / p99 / max",
            "status polls",
            "generations: tails / changes of generation",
        ],
        rows,
    )
    report(
        "Scale: exports of growing size",
        body,
        notes=(
            f"{'Medians of ' + str(args.runs) + ' runs' if args.runs > 1 else 'One run'}, exporting every size in "
            f"turn (order {', '.join(f'{n:,}' for n in sizes)}{', rotating' if args.runs > 1 else ''}) on one host "
            f"and one task hub ({args.runs * sum(sizes):,} instances in all), from a store of {len(seeded.files):,} "
            f"instances of {args.kib} KiB in studies of {PER_STUDY:,}, seeded in {seeding:.0f} s "
            f"({len(seeded.files) / seeding:.0f} blobs/s). `task hub on disk`: database and WAL after the export. "
            "`most history rows while running`: the most rows the running export had in the history table at "
            "once, sampled every second. `its history at the end`: events and bytes of its history rows. Status: "
            "every GET /v1/operations/{id} of the 0.5 s polling during the export, timed by the client. Tails: the "
            "mean time a copy slot waited for its generation's slowest batch, summed over the generations; changes "
            "of generation: from a generation's last copy to the next one's first (both from the host log, as "
            "share of the export's time). "
            f"Idle host {idle:.0f} MiB. Load average (1, 5, 15 min) {load_start[0]:.1f}, {load_start[1]:.1f}, "
            f"{load_start[2]:.1f} at the start and {load_end[0]:.1f}, {load_end[1]:.1f}, {load_end[2]:.1f} at the "
            "end: the machine (2 cores) was shared with other engineers' test runs."
        ),
        results=args.results,
    )


if __name__ == "__main__":
    main()
