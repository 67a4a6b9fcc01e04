"""Export__CopyMode stream, server and auto, side by side: to the store's own Azurite, and to another one.

    .venv/bin/python -m bench.copy_modes [--runs 3] [--small 2000] [--large 200]

Starts Azurite (the store) and one local host per copy mode on it, plus a second Azurite standing for another
storage account. Seeds `--small` instances of 256 KiB (20 studies) and `--large` of 4 MiB. Per run, each host
exports each set to a fresh container on the same Azurite (where Copy Blob from a read SAS of the store
succeeds: no bytes pass through the host) and on the other Azurite (which refuses to copy from an account
it does not hold: `server` asks for every file then streams it, `auto` stops asking after the first refusal).
Prints and appends to bench/RESULTS.md the median files/s, MB/s and the host's CPU seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench.measure import KIB, MIB, median, run_export
from bench.report import add_results_argument, report, table
from devhost.azurite import Azurite, free_port
from testkit.host import Host
from testkit.seed import Seeded, seed
from testkit.stack import Stack, container_client, stack

MODES = ("stream", "server", "auto")


def export(host: Host, seeded: Seeded, connection_string: str) -> dict:
    name = f"mode-{uuid.uuid4().hex[:12]}"
    target = container_client(connection_string, name, pool=8)
    process = psutil.Process(host.process.pid)
    cpu = process.cpu_times()
    done = run_export(host, seeded.studies, connection_string, name)
    if done.view["results"]["exported"] != len(seeded.files):
        raise SystemExit(f"export copied {done.view['results']} of {len(seeded.files)} files")
    after = process.cpu_times()
    target.delete_container()
    return {"seconds": done.seconds, "cpu": after.user + after.system - cpu.user - cpu.system}


def seeded_sets(bench: Stack, small: int, large: int) -> Iterator[tuple[str, Seeded]]:
    """The store seeded with `small` instances of 256 KiB in 20 studies, then `large` of 4 MiB in one (0: none)."""
    for label, count, studies, size in (("256 KiB", small, 20, 256 * KIB), ("4 MiB", large, 1, 4 * MIB)):
        if count:
            print(f"seeding {count} instances of {label} ...", flush=True)
            yield label, seed(bench.store(), studies, count // studies, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=2000, help="instances of 256 KiB, in 20 studies")
    parser.add_argument("--large", type=int, default=200, help="instances of 4 MiB, in one study")
    add_results_argument(parser)
    args = parser.parse_args()
    rows = []
    with stack({"Export__CopyMode": "stream"}) as bench, tempfile.TemporaryDirectory() as folder:
        other = Azurite(Path(folder) / "other", free_port()).start()
        try:
            hosts = {
                "stream": bench.host,
                **{m: bench.add_host({"Export__CopyMode": m}, name=f"hub-{m}") for m in MODES[1:]},
            }
            destinations = {
                "same Azurite": bench.connection_string,
                "another Azurite": other.connection_string,
            }
            for label, seeded in seeded_sets(bench, args.small, args.large):
                for where, connection_string in destinations.items():
                    export(hosts["stream"], seeded, connection_string)  # warm-up
                    found: dict[str, list[dict]] = {m: [] for m in MODES}
                    for run in range(args.runs):
                        for mode in MODES[run % 3 :] + MODES[: run % 3]:
                            found[mode].append(export(hosts[mode], seeded, connection_string))
                        print(
                            f"  {label} to {where}, run {run + 1}/{args.runs}: "
                            + ", ".join(f"{m} {found[m][-1]['seconds']:.1f} s" for m in MODES),
                            flush=True,
                        )
                    rows += [row(label, where, mode, seeded, found[mode]) for mode in MODES]
        finally:
            other.stop()
    body = table(["files", "destination", "Export__CopyMode", "files/s", "MB/s", "host CPU s"], rows)
    report(
        "Copy modes: stream, server, auto",
        body,
        notes=(
            f"Medians of {args.runs} runs, order rotating; defaults otherwise (BatchSize 100, "
            "MaxParallelBatches 10, MaxParallelThreads 5). `another Azurite` refuses Copy Blob from the "
            "store's account, so `server` and `auto` fall back to streaming there."
        ),
        results=args.results,
    )


def row(label: str, where: str, mode: str, seeded: Seeded, runs: list[dict]) -> list:
    seconds = median([r["seconds"] for r in runs])
    return [
        f"{len(seeded.files):,} × {label}",
        where,
        mode,
        f"{len(seeded.files) / seconds:.0f}",
        f"{seeded.total_bytes / 1e6 / seconds:.0f}",
        f"{median([r['cpu'] for r in runs]):.1f}",
    ]


if __name__ == "__main__":
    main()
