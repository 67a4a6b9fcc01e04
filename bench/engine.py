"""Durable engine overhead on the local host: no-op activity throughput and per-activity scheduling cost.

    .venv/bin/python -m bench.engine [--fan-out 2000] [--chain 200] [--runs 3] [--results bench/RESULTS.md]

Starts the local host (`testkit/host.py`) on the durable sample app (tests/devhost/apps/durable_sample) and,
per run, starts through the public webhook:
- `fan_out_fan_in`: a fan-out of `--fan-out` no-op activities (`double`) and their fan-in. Throughput is
  activities per second between the ExecutionStarted and ExecutionCompleted history timestamps.
- `chain`: `--chain` no-op activities called one after another. For each call, the history gives when it was
  scheduled, when it completed and when the next one was scheduled; the median of (next scheduled - scheduled)
  is the scheduling overhead of one activity: dispatch, the activity's commit, and an orchestrator episode
  (the SDK replaying the whole history, as it does under the real host).
Medians over the runs are printed and appended to the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import psutil
import requests

from testkit.host import ROOT, Host

APP = ROOT / "tests" / "devhost" / "apps" / "durable_sample"


def run(host: Host, name: str, count: int) -> list[dict]:
    """Start `name` with input `count` (as the Python client sends it) and return its history when it ends."""
    base = f"{host.base_url}/runtime/webhooks/durabletask"
    links = requests.post(f"{base}/orchestrators/{name}", data=json.dumps(json.dumps(count)), timeout=60).json()
    while requests.get(links["statusQueryGetUri"], timeout=60).json()["runtimeStatus"] in ("Pending", "Running"):
        time.sleep(0.05)
    status = requests.get(links["statusQueryGetUri"], params={"showHistory": "true"}, timeout=60).json()
    if status["runtimeStatus"] != "Completed":
        raise SystemExit(f"{name} ended {status['runtimeStatus']}: {status['output']}")
    return status["historyEvents"]


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def fan_out(host: Host, count: int) -> float:
    events = run(host, "fan_out_fan_in", count)
    return count / (at(events[-1]["Timestamp"]) - at(events[0]["Timestamp"]))


def chain(host: Host, count: int) -> tuple[float, float, float]:
    """Median ms per activity: scheduled to next scheduled, scheduled to completed, completed to next scheduled."""
    calls = [e for e in run(host, "chain", count) if e["EventType"] == "TaskCompleted"]
    loop = [at(b["ScheduledTime"]) - at(a["ScheduledTime"]) for a, b in pairwise(calls)]
    activity = [at(c["Timestamp"]) - at(c["ScheduledTime"]) for c in calls]
    episode = [at(b["ScheduledTime"]) - at(a["Timestamp"]) for a, b in pairwise(calls)]
    return tuple(1000 * statistics.median(x) for x in (loop, activity, episode))  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fan-out", type=int, default=2000)
    parser.add_argument("--chain", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()

    load = os.getloadavg()[0]  # other work on the machine skews the figures: say how busy it was
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "hub"
        host = Host(APP, data, env={"DURABLE_SAMPLE_LOG": os.devnull}).start()
        try:
            throughputs, chains = [], []
            for i in range(args.runs):
                throughputs.append(fan_out(host, args.fan_out))
                chains.append(chain(host, args.chain))
                print(f"run {i + 1}: fan-out {throughputs[-1]:.0f} activities/s; chain "
                      f"{chains[-1][0]:.1f} ms per activity ({chains[-1][1]:.1f} dispatch to completion, "
                      f"{chains[-1][2]:.1f} episode)", flush=True)
        finally:
            host.stop()

    rate = statistics.median(throughputs)
    loop, activity, episode = (statistics.median(c[k] for c in chains) for k in range(3))
    machine = (f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
               f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, "
               f"{datetime.now(UTC):%Y-%m-%d}, load average {load:.1f} at start")
    command = " ".join(["bench/engine.py", *sys.argv[1:]])
    report = (
        f"\n### Durable engine, {machine}\n\n"
        f"`.venv/bin/python {command}` (median of {args.runs} runs)\n\n"
        f"| measure | median |\n|---|---|\n"
        f"| no-op activity throughput, fan-out of {args.fan_out} | {rate:.0f} activities/s "
        f"({1000 / rate:.2f} ms per activity) |\n"
        f"| scheduling overhead per activity, chain of {args.chain} sequential calls | {loop:.1f} ms |\n"
        f"| of which dispatch to committed completion | {activity:.1f} ms |\n"
        f"| of which orchestrator episode (SDK replay of the history) and commit | {episode:.1f} ms |\n"
    )
    print(report)
    with args.results.open("a", encoding="utf-8") as results:
        results.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
