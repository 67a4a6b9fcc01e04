"""Full-size reliability runs: 3 000-instance exports through host crashes and storage outages, checked file by file.

    .venv/bin/python -m bench.reliability [--instances 3000] [--size 16384] [--runs 3] [--outage 10]
                                          [--results bench/RESULTS.md]

Each run starts its own Azurite and local host (testkit/stack.py), seeds the store with `--instances` DICOM
files of about `--size` bytes in one study of 10 series, and exports the study in generations of 4 × 50:
- crash: the host is SIGKILLed three times within the export — during expansion, during the copy fan-out
  and around continue-as-new (testkit/crashes.py freezes it, reads its task hub and kills it
  exactly there) — and restarted on the same data each time;
- outage: Azurite is stopped for `--outage` seconds once a quarter of the files are exported, then started
  again on the same data and port; the operation, durable status and host status are polled throughout
  (retry budget: 6 attempts, 1 s apart doubling);
- long outage: Azurite is stopped until the operation fails (retry budget: 2 attempts, 1 s apart).
Every export that completes is compared with the store file by file (bytes compared), and its destination
container is searched for blobs outside `<operation id>/` (leaks). Medians over the runs are printed and
appended to the results file.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from azure.storage.blob import ContainerClient

from bench.report import add_results_argument, report, table
from shared.export import manifest
from testkit.crashes import POINTS, kill_at
from testkit.exporting import export_body, finished, start, view
from testkit.host import wait_for
from testkit.seed import seed
from testkit.stack import Stack, stack

SETTINGS = {
    "Export__BatchSize": "50",
    "Export__MaxParallelBatches": "4",
    "Export__MaxParallelThreads": "8",
    "Export__RetryOptions__MaxNumberOfAttempts": "6",
    "Export__RetryOptions__FirstRetryIntervalSeconds": "1",
    "Export__RetryOptions__BackoffCoefficient": "2",
}
SHORT_BUDGET = {"Export__RetryOptions__MaxNumberOfAttempts": "2", "Export__RetryOptions__FirstRetryIntervalSeconds": "1",
                "Export__RetryOptions__BackoffCoefficient": "1"}


def compare(running: Stack, destination: ContainerClient, operation_id: str, files: list[str]) -> dict:
    """Every seeded file against its exported copy, and the container searched for anything else."""
    store = running.store()

    def same(name: str) -> tuple[int, bool]:
        original = store.download_blob(name).readall()
        try:
            copy = destination.download_blob(f"{operation_id}/results/{name}").readall()
        except Exception:  # noqa: BLE001 - a missing copy counts as a mismatch
            return len(original), False
        return len(original), copy == original

    with ThreadPoolExecutor(32) as pool:
        compared = list(pool.map(same, files))
    expected = {f"{operation_id}/results/{name}" for name in files} | {
        f"{operation_id}/errors.log", f"{operation_id}/{manifest.NAME}"}
    found = {b.name for b in destination.list_blobs()}
    errors = destination.download_blob(f"{operation_id}/errors.log").readall().decode().splitlines()
    return {"files": len(compared), "bytes": sum(size for size, _ in compared),
            "mismatched": sum(not ok for _, ok in compared), "leaks": len(found - expected),
            "missing": len(expected - found), "error lines": len(errors)}


def prepared(running: Stack, instances: int, size: int) -> tuple[list[str], list[str], ContainerClient]:
    seeded = seed(running.store(), 1, instances, size, series_per_study=10)
    return seeded.studies, seeded.files, running.container(f"dest-{uuid.uuid4().hex[:10]}")


def crash_run(instances: int, size: int) -> dict:
    with stack(SETTINGS) as running:
        values, files, destination = prepared(running, instances, size)
        host = running.host
        began = time.monotonic()
        operation = start(host, export_body(values, destination, running.connection_string))
        looks = []
        for point, share in zip(POINTS, (0.2, 0.45, 0.7), strict=True):
            wait_for(lambda: view(operation["href"])["results"]["exported"] >= share * instances,  # noqa: B023
                     timeout=900, message=f"{share:.0%} exported")
            looks.append(kill_at(host, operation["id"], point, timeout=300))
            host.start()
        done = finished(operation["href"], timeout=1800)
        seconds = time.monotonic() - began
        checked = compare(running, destination, operation["id"], files)
    return {"status": done["status"], "exported": done["results"]["exported"],
            "skipped": done["results"]["skipped"], "kills": len(looks), "looks": sum(looks),
            "seconds": seconds, **checked}


def poll_through(running: Stack, operation: dict, until) -> list[float]:
    """Seconds each status answer took (operation, durable status, host status) until `until()`."""
    host, timings = running.host, []
    urls = (operation["href"], f"{host.base_url}/runtime/webhooks/durabletask/instances/{operation['id']}",
            f"{host.base_url}/admin/host/status")
    while not until():
        for url in urls:
            began = time.monotonic()
            r = requests.get(url, timeout=30)
            timings.append(time.monotonic() - began)
            if r.status_code not in (200, 202):
                raise SystemExit(f"{url} answered {r.status_code} during the outage")
        time.sleep(0.25)
    return timings


def outage_run(instances: int, size: int, outage: float) -> dict:
    with stack(SETTINGS) as running:
        values, files, destination = prepared(running, instances, size)
        began = time.monotonic()
        operation = start(running.host, export_body(values, destination, running.connection_string))
        wait_for(lambda: view(operation["href"])["results"]["exported"] >= instances / 4, timeout=900,
                 message="a quarter exported")
        running.azurite.stop()
        stopped = time.monotonic()
        timings = poll_through(running, operation, lambda: time.monotonic() - stopped >= outage)
        running.azurite.start()
        done = finished(operation["href"], timeout=1800)
        seconds = time.monotonic() - began
        checked = compare(running, destination, operation["id"], files)
        failed_attempts = running.host.log().count("(Failed, InstanceId=")
    return {"status": done["status"], "exported": done["results"]["exported"],
            "skipped": done["results"]["skipped"], "failed attempts": failed_attempts,
            "slowest status": max(timings), "seconds": seconds, **checked}


def long_outage_run(instances: int, size: int) -> dict:
    with stack({**SETTINGS, **SHORT_BUDGET}) as running:
        values, _, destination = prepared(running, instances, size)
        operation = start(running.host, export_body(values, destination, running.connection_string))
        wait_for(lambda: view(operation["href"])["results"]["exported"] >= instances / 4, timeout=900,
                 message="a quarter exported")
        running.azurite.stop()
        stopped = time.monotonic()
        timings = poll_through(running, operation, lambda: view(operation["href"])["status"] != "running"
                               or time.monotonic() - stopped > 600)
        failed_after = time.monotonic() - stopped
        done = view(operation["href"])
        running.azurite.start()
    return {"status": done["status"], "exported": done["results"]["exported"], "failed after": failed_after,
            "slowest status": max(timings), "reason": (done.get("errors") or [""])[0][:120]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=3000)
    parser.add_argument("--size", type=int, default=16384, help="bytes per DICOM file (about)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds storage is down in the outage runs")
    add_results_argument(parser)
    args = parser.parse_args(argv)

    runs: dict[str, list[dict]] = {"crash": [], "outage": [], "long outage": []}
    for run in range(args.runs):
        for name, measure in (("crash", lambda: crash_run(args.instances, args.size)),
                              ("outage", lambda: outage_run(args.instances, args.size, args.outage)),
                              ("long outage", lambda: long_outage_run(args.instances, args.size))):
            figures = measure()
            print(f"  {name} run {run + 1}/{args.runs}: {figures}", flush=True)
            runs[name].append(figures)

    completed = runs["crash"] + runs["outage"]
    med = lambda rows, key: statistics.median(r[key] for r in rows)
    exact = lambda rows: sum(r["status"] == "completed" and r["exported"] == args.instances and r["skipped"] == 0
                             and r["mismatched"] + r["missing"] + r["leaks"] == 0 for r in rows)
    rows = [
        ["crash (3 kills each)", len(runs["crash"]), exact(runs["crash"]), sum(r["kills"] for r in runs["crash"]),
         med(runs["crash"], "seconds")],
        [f"outage ({args.outage:g} s)", len(runs["outage"]), exact(runs["outage"]), 0, med(runs["outage"], "seconds")],
    ]
    body = table(["scenario", "exports", "completed exactly", "kills survived", "median s"], rows)
    totals = {
        "files compared": sum(r["files"] for r in completed),
        "bytes compared": sum(r["bytes"] for r in completed),
        "mismatched files": sum(r["mismatched"] + r["missing"] for r in completed),
        "exported ≠ instances or skipped ≠ 0": sum(r["exported"] != args.instances or r["skipped"] != 0
                                                   for r in completed),
        "leaks (blobs outside the operation's prefix)": sum(r["leaks"] for r in completed),
        "failed activity attempts ridden out in outages (median)": med(runs["outage"], "failed attempts"),
        "slowest status answer during outages, s": max(r["slowest status"] for r in runs["outage"]
                                                       + runs["long outage"]),
        "long outages failed / runs": f"{sum(r['status'] == 'failed' for r in runs['long outage'])}"
                                      f" / {len(runs['long outage'])}",
        "long outage: failed after, median s": med(runs["long outage"], "failed after"),
        "long outage: reason": runs["long outage"][0]["reason"],
    }
    body += "\n\n" + "\n".join(f"- {k}: {v:,}" if isinstance(v, int) else f"- {k}: {v:.2f}"
                                if isinstance(v, float) else f"- {k}: {v}" for k, v in totals.items())
    report(f"Reliability: {args.instances} instances × {args.runs} runs", body, results=args.results)
    return 0 if exact(completed) == len(completed) else 1


if __name__ == "__main__":
    sys.exit(main())
