"""What hashing every exported file (Content-MD5, SHA-256 manifest) costs in throughput, with and without, in one run.

    .venv/bin/python -m bench.hashing [--runs 3] [--small 2000] [--large 200] [--before REF] [--keep]

"Without" is the app as it was just before hashing came in (by default the parent of the commit that
added shared/export/upload.py; `--before` for another git ref), run from an archive of that commit by a
second local host on the same Azurite and store; "with" is the working tree. Both run in `stream` and in
`server` copy mode (where the copy is hashed by reading it back, so bytes that server copy kept out of
the function now come in once). Seeds `--small` instances of 256 KiB (20 studies) and `--large` of
4 MiB (block uploads); per run each of the four hosts exports each set to a fresh container, in rotating
order. Also measures the MiB that MD5 and SHA-256 each hash per CPU-second here (1 GiB in memory).
Prints and appends to bench/RESULTS.md the median files/s, MB/s and host CPU seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import time

from bench.copy_modes import export, row, seeded_sets
from bench.measure import MIB, median
from bench.report import add_results_argument, report, table
from testkit.host import ROOT
from testkit.stack import checkout, stack

MODES = ("stream", "server")


def hashing_cost(total: int = 1 << 30, block: int = 4 * MIB) -> dict[str, float]:
    """MiB hashed per CPU-second by MD5 and by SHA-256, over `total` bytes in `block` chunks (CPU time: the
    machine's load does not change it, as it changes wall time)."""
    data = os.urandom(block)
    cost = {}
    for name, new in (("MD5", lambda: hashlib.md5(usedforsecurity=False)), ("SHA-256", hashlib.sha256)):
        digest, started = new(), time.process_time()
        for _ in range(total // block):
            digest.update(data)
        cost[name] = total / MIB / (time.process_time() - started)
    return cost


def before_hashing() -> str:
    """The parent of the commit that added shared/export/upload.py."""
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H", "--",
                            "shared/export/upload.py"], check=True, capture_output=True, text=True).stdout.split()
    if not added:
        raise SystemExit("shared/export/upload.py is not committed yet: give --before REF")
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", f"{added[-1]}^"], check=True,
                          capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=2000, help="instances of 256 KiB, in 20 studies")
    parser.add_argument("--large", type=int, default=200, help="instances of 4 MiB, in one study")
    parser.add_argument("--before", help="git ref of the app without hashing (default: before upload.py)")
    parser.add_argument("--keep", action="store_true", help="keep the hosts' logs and Azurite's data (printed)")
    add_results_argument(parser)
    args = parser.parse_args()
    before = args.before or before_hashing()
    cost = ", ".join(f"{name} {rate:,.0f}" for name, rate in hashing_cost().items())
    print(f"MiB hashed per CPU-second: {cost}", flush=True)
    rows = []
    with stack({"Export__CopyMode": "stream"}, keep=args.keep) as bench:
        if args.keep:
            print(f"logs and data in {bench.folder}", flush=True)
        old_app = checkout(before, bench.folder / "before")
        hosts = {
            ("with", "stream"): bench.host,
            ("without", "stream"): bench.add_host(app=old_app, name="hub-before"),
            ("with", "server"): bench.add_host({"Export__CopyMode": "server"}, name="hub-server"),
            ("without", "server"): bench.add_host({"Export__CopyMode": "server"}, app=old_app,
                                                  name="hub-before-server"),
        }
        order = list(hosts)
        for label, seeded in seeded_sets(bench, args.small, args.large):
            export(bench.host, seeded, bench.connection_string)  # warm-up
            found: dict[tuple[str, str], list[dict]] = {key: [] for key in hosts}
            for run in range(args.runs):
                for key in order[run % 4:] + order[:run % 4]:
                    found[key].append(export(hosts[key], seeded, bench.connection_string))
                print(f"  {label}, run {run + 1}/{args.runs}: "
                      + ", ".join(f"{h} {m} {found[(h, m)][-1]['seconds']:.1f} s" for h, m in order), flush=True)
            for mode in MODES:
                pair = [row(label, hashing, mode, seeded, found[(hashing, mode)]) for hashing in ("without", "with")]
                ratio = median([plain["seconds"] / hashed["seconds"] for plain, hashed in zip(
                    found[("without", mode)], found[("with", mode)], strict=True)])  # of files/s
                rows += [[*pair[0], ""], [*pair[1], f"{ratio:.2f}"]]
    body = table(["files", "hashing", "Export__CopyMode", "files/s", "MB/s", "host CPU s", "with/without"], rows)
    report(
        "Hashing: Content-MD5 and the SHA-256 manifest, with and without",
        body,
        notes=(
            f"Medians of {args.runs} runs, order rotating; defaults otherwise (BatchSize 100, MaxParallelBatches "
            f"10, MaxParallelThreads 5), store and destination on one Azurite. `without` is the app at `{before}`. "
            "`with/without` is the median of the per-run throughput ratios. MiB hashed per CPU-second (1 GiB in "
            f"memory, in the benchmark's process): {cost}."
        ),
        results=args.results,
    )


if __name__ == "__main__":
    main()
