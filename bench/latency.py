"""API latency on the local host: POST /export → 202, and GET /v1/operations/{id}, p50 and p99.

    .venv/bin/python -m bench.latency [--runs 3] [--requests 200]

Starts Azurite and the local host, seeds a study of one small instance and, per run, from one keep-alive
client session:
- POST /export of that study `--requests` times, one after another (each starts an export, which then runs
  beside the next requests, as on a busy server);
- GET /v1/operations/{id} `--requests` times over those operations once they have ended (idle host);
- GET of one operation `--requests` times while an export of 4 000 instances of 64 KiB copies (host under
  load: 50 copies at once).
Each time is client-side, from sending the request to the full response. Medians over the runs of each
run's p50 and p99; targets p50 < 50 ms for the POST and < 10 ms for the GET.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import requests
from azure.storage.blob import ContainerClient

from bench.measure import KIB, median, repeat, start_export
from bench.report import add_results_argument, report, table
from cli.api import Api, is_terminal
from testkit.exporting import export_body
from testkit.seed import seed
from testkit.stack import Stack, stack

TARGETS_MS = {"POST /export": 50, "GET /v1/operations/{id}": 10}


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def timed(session: requests.Session, method: str, url: str, **kwargs) -> tuple[float, requests.Response]:
    started = time.perf_counter()
    response = session.request(method, url, timeout=60, **kwargs)
    return (time.perf_counter() - started) * 1000, response


def wait_ended(base: str, ids: list[str], timeout: float = 300) -> None:
    api = Api(base)
    for operation_id in ids:
        try:
            api.wait(operation_id, interval=0.1, timeout=timeout)
        except TimeoutError as e:
            raise SystemExit(str(e)) from None


def copying(target: ContainerClient, operation_id: str, timeout: float = 120) -> None:
    """Return once the export has written its first file (its copies, not just its listing, are running)."""
    deadline = time.monotonic() + timeout
    while not next(iter(target.list_blob_names(name_starts_with=f"{operation_id}/results/")), None):
        if time.monotonic() > deadline:
            raise SystemExit(f"export {operation_id} wrote nothing within {timeout}s")
        time.sleep(0.05)


def measure(bench: Stack, one: str, busy: list[str], count: int) -> dict:
    base = bench.host.base_url
    container = f"lat-{uuid.uuid4().hex[:12]}"
    bench.container(container)
    body = export_body([one], connectionString=bench.connection_string, blobContainerName=container)
    figures: dict = {}
    with requests.Session() as session:
        posts, ids = [], []
        for _ in range(count):
            ms, response = timed(session, "POST", f"{base}/export", json=body)
            if response.status_code != 202:
                raise SystemExit(f"POST /export answered {response.status_code}: {response.text}")
            posts.append(ms)
            ids.append(response.json()["id"])
        wait_ended(base, ids)
        gets = []
        for n in range(count):
            ms, response = timed(session, "GET", f"{base}/v1/operations/{ids[n % len(ids)]}")
            if response.status_code != 200:
                raise SystemExit(f"GET answered {response.status_code}: {response.text}")
            gets.append(ms)
        big_container = f"lat-{uuid.uuid4().hex[:12]}"
        target = bench.container(big_container)
        running, _ = start_export(bench.host, busy, bench.connection_string, big_container)
        copying(target, running)
        loaded = []
        for _ in range(count):
            ms, response = timed(session, "GET", f"{base}/v1/operations/{running}")
            loaded.append(ms)
            if is_terminal(response.json()):
                raise SystemExit("the busy export ended before the measurement did: give it more instances")
        wait_ended(base, [running])
    for name, values in (("post", posts), ("get", gets), ("get_busy", loaded)):
        figures[f"{name}_p50"] = percentile(values, 50)
        figures[f"{name}_p99"] = percentile(values, 99)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    add_results_argument(parser)
    args = parser.parse_args()
    with stack() as bench:
        store = bench.store()
        one = seed(store, 1, 1, KIB).studies[0]
        busy = seed(store, 4, 1000, 64 * KIB).studies
        measure(bench, one, busy, 20)  # warm-up
        runs = repeat(args.runs, lambda _: measure(bench, one, busy, args.requests))
    rows = []
    for label, key, target in (
        ("POST /export → 202", "post", TARGETS_MS["POST /export"]),
        ("GET /v1/operations/{id}, idle host", "get", TARGETS_MS["GET /v1/operations/{id}"]),
        ("GET /v1/operations/{id}, while an export copies", "get_busy", None),
    ):
        p50, p99 = median([r[f"{key}_p50"] for r in runs]), median([r[f"{key}_p99"] for r in runs])
        met = "—" if target is None else ("yes" if p50 < target else f"no (+{p50 - target:.1f} ms)")
        rows.append([label, f"{p50:.1f}", f"{p99:.1f}", f"< {target}" if target else "—", met])
    body = table(["request", "p50 ms", "p99 ms", "target p50 ms", "met"], rows)
    report(
        "API latency on the local host",
        body,
        notes=(
            f"Medians over {args.runs} runs of each run's percentiles, {args.requests} requests each, one "
            "after another from a keep-alive session, timed by the client. Each POST starts a one-instance "
            "export that runs beside the following requests; the POST includes validating the request, "
            "creating errors.log in the destination (one Azurite request) and starting the orchestration."
        ),
        results=args.results,
    )


if __name__ == "__main__":
    main()
