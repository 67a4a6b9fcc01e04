"""Lanes: what `Export__Lanes=1` costs against a git ref (main), and an export run as several lanes at once.

    .venv/bin/python -m bench.lanes [--runs 5] [--files 1500] [--kib 128] [--studies 12] [--lanes 4] [--before main]

One Azurite and one store seeded with `--files` instances of `--kib` KiB in `--studies` studies; three hosts on it,
each exporting every study per run, in an order that rotates with the run:
- `lanes=1`: this worktree's app with the default Export__Lanes (1);
- `before`: the app and devhost at `--before` (an archive of that commit), the same settings;
- `lanes=N`: this worktree's app with Export__Lanes=`--lanes` and Export__MaxParallelBatches 10 ÷ N per lane
  (rounded down), so that it keeps no more batches in flight than the others, in lanes that copy side by side.
Each export is timed from the POST to its end as the host recorded it (bench/measure.py), and the host's CPU
seconds during it are read (less sensitive than wall time to the load of a shared machine). For the lanes' run, the
parent's history says when each lane was created (`ScheduledTime`) and when it completed (`Timestamp`), and the host
log when each lane's first copy started and its last one ended: the lanes ran at once when every lane started
before any lane ended. Prints, and appends to bench/RESULTS.md, the medians and the median per-run ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import uuid
from datetime import datetime

import psutil
import requests

from bench.measure import KIB, cpu_seconds, median, repeat, run_export
from bench.report import add_results_argument, report, table
from shared.export.operation import durable_json
from testkit.host import Host
from testkit.seed import seed
from testkit.stack import stack

SETTINGS = {"Export__BatchSize": "100", "Export__MaxParallelBatches": "10", "Export__MaxParallelThreads": "5"}
_COPY = re.compile(r"\[(?P<at>[\d-]+ [\d:,]+)\] Executed 'Functions\.export_copy_batch' "
                   r"\(Succeeded, InstanceId=(?P<instance>[\w-]+), Id=[\w-]+, Duration=(?P<ms>\d+)ms\)")


def lane_spans(host: Host, operation_id: str) -> list[dict]:
    """Each lane of the operation: created and completed (the parent's history), first copy start and last copy
    end (the host log), as seconds on one clock."""
    r = requests.get(f"{host.base_url}/runtime/webhooks/durabletask/instances/{operation_id}",
                     params={"showHistory": "true", "showHistoryOutput": "false", "showInput": "true"}, timeout=60)
    r.raise_for_status()
    spans = {}
    for event in r.json()["historyEvents"]:
        if event["EventType"] == "SubOrchestrationInstanceCompleted":
            lane = durable_json(event["Input"])["lane"]
            spans[lane] = {"lane": lane, "created": _seconds(event["ScheduledTime"]),
                           "completed": _seconds(event["Timestamp"])}
    for m in _COPY.finditer(host.log()):
        prefix, _, number = m["instance"].partition("-lane")
        if prefix == operation_id and number:
            end = datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            span = spans[int(number)]
            span["first copy"] = min(span.get("first copy", end), end - int(m["ms"]) / 1000)
            span["last copy"] = max(span.get("last copy", end), end)
    return [spans[n] for n in sorted(spans)]


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--kib", type=int, default=128)
    parser.add_argument("--studies", type=int, default=12)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--before", default="main", metavar="GIT_REF")
    add_results_argument(parser)
    args = parser.parse_args()
    load = [os.getloadavg()[0]]
    with stack(SETTINGS, before=args.before) as bench:
        assert bench.host is not None and bench.host_before is not None
        laned = bench.add_host({"Export__Lanes": str(args.lanes),
                                "Export__MaxParallelBatches": str(max(1, 10 // args.lanes))}, name="hub-lanes")
        print(f"seeding {args.files} instances of {args.kib} KiB in {args.studies} studies ...", flush=True)
        seeded = seed(bench.store(), args.studies, args.files // args.studies, args.kib * KIB)
        hosts = {"lanes=1": bench.host, "before": bench.host_before, f"lanes={args.lanes}": laned}
        spans: list[list[dict]] = []

        def measure(run: int) -> dict:
            figures = {}
            order = list(hosts.items())
            for tag, host in order[run % len(order):] + order[:run % len(order)]:
                name = f"exp-{uuid.uuid4().hex[:12]}"
                target = bench.container(name)
                process = psutil.Process(host.process.pid)
                cpu = cpu_seconds(process)
                done = run_export(host, seeded.studies, bench.connection_string, name)
                figures[f"{tag} cpu"] = cpu_seconds(process) - cpu
                if done.view["results"]["exported"] != len(seeded.files):
                    raise SystemExit(f"{tag}: exported {done.view['results']} of {len(seeded.files)} files")
                figures[f"{tag} s"] = done.seconds
                if host is laned:
                    spans.append(lane_spans(host, done.operation_id))
                target.delete_container()
            load.append(os.getloadavg()[0])
            return figures

        measure(0)  # warm-up: imports, connection pools, the store's first listings
        runs = repeat(args.runs, measure)
    files = len(seeded.files)
    def med(tag: str, key: str) -> float:
        return median([r[f"{tag} {key}"] for r in runs])

    rows = [[tag, f"{med(tag, 's'):.2f}", f"{files / med(tag, 's'):.0f}",
             f"{median([r[f'{tag} s'] / r['before s'] for r in runs]):.3f}", f"{med(tag, 'cpu'):.2f}",
             f"{median([r[f'{tag} cpu'] / r['before cpu'] for r in runs]):.3f}"] for tag in hosts]
    body = table(["export", "seconds", "files/s", "seconds ÷ before", "host CPU s", "CPU ÷ before"], rows)
    body += "\n\n(Medians; the ratios are medians of the per-run ratios: above 1 costs more than `before`.)"
    last = spans[-1]
    origin = min(s["created"] for s in last)
    body += (f"\n\nThe lanes of the last lanes={args.lanes} run, seconds from the first lane's creation (parent's history:"
             " created, completed; host log: first copy started, last copy ended):\n\n")
    body += table(["lane", "created", "first copy", "last copy", "completed"],
                  [[s["lane"], *(f"{s[k] - origin:.2f}" for k in ("created", "first copy", "last copy", "completed"))]
                   for s in last])
    at_once = [max(s["created"] for s in run) < min(s["completed"] for s in run) for run in spans]
    copying = [max(s["first copy"] for s in run) < min(s["last copy"] for s in run) for run in spans]
    body += (f"\n\nEvery lane was created before any lane completed (the lanes' orchestrations ran at once) in "
             f"{sum(at_once)} of {len(spans)} runs (warm-up included); every lane's first copy started before any "
             f"lane's last copy ended in {sum(copying)} of {len(spans)}.")
    report(f"Lanes: Export__Lanes=1 against {args.before}, and {args.lanes} lanes at once", body, notes=(
        f"{files} files of {args.kib} KiB in {args.studies} studies, one Azurite, BatchSize 100, MaxParallelBatches 10 "
        f"({max(1, 10 // args.lanes)} per lane with lanes), "
        f"MaxParallelThreads 5; medians of {args.runs} runs after a warm-up, the order of the three exports rotating. "
        f"`before` is `{args.before}` (app and devhost archived from git). Load average (1 min) during the runs: "
        f"{min(load):.1f} to {max(load):.1f} on {os.cpu_count()} cores, shared with other engineers' work."),
        results=args.results)


if __name__ == "__main__":
    main()
