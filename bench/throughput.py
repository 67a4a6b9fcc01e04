"""Export throughput against a raw copy of the same files, side by side in one run.

    .venv/bin/python -m bench.throughput [--runs 3] [--small 2000] [--studies 20] [--large 200]

Seeds the store (one Azurite) with `--small` instances of `--small-kib` (256 KiB) in `--studies` studies
and `--large` instances of 4 MiB, then per run and per size, in alternating order:
- baseline: a plain thread pool of MaxParallelBatches × MaxParallelThreads threads (50 with the defaults)
  downloading each file and uploading it to a fresh container of the same Azurite (no orchestration,
  the file names given, connection pools as large as the pool of threads);
- script: what a user would write instead of the service: list each study, handing what it lists to the
  same pool as the listing goes (the baseline's copy, but it has to find the files first);
- baseline + hash and script + hash: the same two, also computing each file's MD5 and SHA-256 as they copy it
  and uploading it with its Content-MD5 (as `azcopy --put-md5` does): the work the export does for its
  manifest and Content-MD5, so these are the like-for-like peers;
- export: POST /export of the studies to another fresh container, timed from the POST to the
  operation's lastUpdatedTime at its end (so listing, the starter and every generation count;
  status is polled every 0.5 s).
Prints and appends to bench/RESULTS.md the medians of files/s, MB/s and the ratios to each of the four peers
(medians of the per-run ratios), with the CPU seconds the copier (this
process for the baseline, the host for the export) and Azurite spent on each.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from azure.storage.blob import ContainerClient, ContentSettings

from bench.measure import KIB, MIB, cpu_seconds, median, repeat, run_export
from bench.profile_summary import summarise, timeline, top_frames
from bench.report import add_results_argument, report, table
from testkit.host import Host
from testkit.seed import Seeded, seed
from testkit.stack import Stack, stack

SETTINGS = {"Export__BatchSize": "100", "Export__MaxParallelBatches": "10", "Export__MaxParallelThreads": "5"}
CONCURRENCY = 10 * 5


def _copier(source: ContainerClient, target: ContainerClient,
            transform: Callable[[bytes], bytes | None] | None = None, hashing: bool = False):
    """Download a file and upload it (`transform`ed first, when given; not at all when it gives None); with
    `hashing`, compute its MD5 and SHA-256 and upload it with its Content-MD5, as the export does."""
    def copy(name: str) -> None:
        data: bytes | None = source.download_blob(name, max_concurrency=1).readall()
        if transform is not None:
            data = transform(data)
        if data is None:
            return
        settings = {}
        if hashing:
            hashlib.sha256(data).digest()  # what the export's manifest line needs
            settings["content_settings"] = ContentSettings(content_md5=bytearray(hashlib.md5(data).digest()))
        target.upload_blob(name, data, overwrite=True, max_concurrency=1, **settings)

    return copy


def raw_copy(source: ContainerClient, target: ContainerClient, names: list[str], threads: int,
             hashing: bool = False) -> None:
    """The yardstick: download each file and upload it, `threads` at a time."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(_copier(source, target, hashing=hashing), names))


def list_and_copy(source: ContainerClient, target: ContainerClient, studies: list[str], threads: int,
                  transform: Callable[[bytes], bytes | None] | None = None, hashing: bool = False) -> None:
    """The twenty-line script: list each study and copy what the listing finds with the same pool."""
    copy = _copier(source, target, transform, hashing)
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(copy, blob.name) for study in studies
                   for blob in source.list_blobs(name_starts_with=f"{study}/")]
        for future in futures:
            future.result()


PEERS = ("raw", "raw_hash", "script", "script_hash")


def measure(bench: Stack, seeded: Seeded, run: int) -> dict:
    """One baseline and one export per host of `seeded`, in an order that rotates with `run`."""
    azurite = psutil.Process(bench.azurite.process.pid)
    me = psutil.Process()
    store = bench.store(CONCURRENCY + 8)
    figures: dict = {}

    def baseline(tag: str, copy) -> None:
        target = bench.container(f"{tag.replace('_', '-')}-{uuid.uuid4().hex[:12]}", CONCURRENCY + 8)
        cpu, azurite_cpu = cpu_seconds(me), cpu_seconds(azurite)
        started = time.perf_counter()
        copy(target)
        figures[f"{tag}_s"] = time.perf_counter() - started
        figures[f"{tag}_cpu"] = cpu_seconds(me) - cpu
        figures[f"{tag}_azurite_cpu"] = cpu_seconds(azurite) - azurite_cpu
        target.delete_container()

    def export(host: Host, tag: str) -> None:
        process = psutil.Process(host.process.pid)
        name = f"exp-{uuid.uuid4().hex[:12]}"
        target = bench.container(name)
        cpu, azurite_cpu = cpu_seconds(process), cpu_seconds(azurite)
        done = run_export(host, seeded.studies, bench.connection_string, name)
        if done.view["results"]["exported"] != len(seeded.files):
            raise SystemExit(f"export copied {done.view['results']} of {len(seeded.files)} files")
        figures[f"{tag}_s"] = done.seconds
        for key, value in timeline(host.log(), done.operation_id).items():
            figures[f"{tag}_{key}"] = value
        figures[f"{tag}_host_cpu"] = cpu_seconds(process) - cpu
        figures[f"{tag}_azurite_cpu"] = cpu_seconds(azurite) - azurite_cpu
        target.delete_container()

    steps = [lambda: baseline("raw", lambda target: raw_copy(store, target, seeded.files, CONCURRENCY)),
             lambda: baseline("raw_hash", lambda target: raw_copy(store, target, seeded.files, CONCURRENCY, True)),
             lambda: baseline("script", lambda target: list_and_copy(store, target, seeded.studies, CONCURRENCY)),
             lambda: baseline("script_hash", lambda target: list_and_copy(store, target, seeded.studies, CONCURRENCY,
                                                                          hashing=True)),
             lambda: export(bench.host, "export")]
    if bench.host_before:
        steps.append(lambda: export(bench.host_before, "before"))
    for step in steps[run % len(steps) :] + steps[: run % len(steps)]:
        step()
    figures["ratio"] = figures["raw_s"] / figures["export_s"]
    if bench.host_before:
        figures["ratio_before"] = figures["raw_s"] / figures["before_s"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=2000, help="instances of --small-kib")
    parser.add_argument("--small-kib", type=int, default=256, help="size of the small instances")
    parser.add_argument("--studies", type=int, default=20, help="studies the small instances are spread over")
    parser.add_argument("--large", type=int, default=200, help="instances of 4 MiB (one study)")
    parser.add_argument(
        "--before", metavar="GIT_REF", help="also export with the app and devhost at this commit"
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        type=Path,
        help="after the runs, record py-spy (threads on a CPU) on the host during one more export",
    )
    add_results_argument(parser)
    args = parser.parse_args()
    small = f"{args.small_kib} KiB"
    cases = [(small, args.small, args.studies, args.small_kib * KIB), ("4 MiB", args.large, 1, 4 * MIB)]
    rows, walls = [], []
    with stack(SETTINGS, before=args.before) as bench:
        for label, count, studies, size in cases:
            if not count:
                continue
            print(f"seeding {count} instances of {label} ...", flush=True)
            seeded = seed(bench.store(), studies, count // studies, size)
            print(
                f"{label}: a warm-up run, then {args.runs} runs (baseline and exports, order rotating)",
                flush=True,
            )
            measure(bench, seeded, 0)
            runs = repeat(args.runs, lambda run, seeded=seeded: measure(bench, seeded, run))
            rows += [
                [label, *row] for row in summary(runs, len(seeded.files), seeded.total_bytes, args.before)
            ]
            walls += [[label, *row] for row in wall_time(runs, args.before)]
            if args.profile and label == small:
                profiled = profile(bench, seeded.studies, len(seeded.files), args.profile)
    body = table(["files", "copier", "files/s", "MB/s", "÷ baseline", "÷ baseline + hash", "÷ script",
                  "÷ script + hash", "copier CPU s", "Azurite CPU s"], rows)
    body += "\n\nWhere each export's wall time went (medians; host log's activity start and end times):\n\n"
    body += table(["files", "export", "seconds", "generations", *WALL], walls)
    report(
        "Throughput: export against a raw copy",
        body,
        notes=(
            f"Medians of {args.runs} runs; each `÷ peer` is the median of the per-run ratios "
            f"(the peer's seconds / this copier's seconds): above 1 is faster. `+ hash`: the peer also computes "
            f"MD5 and SHA-256 and sets Content-MD5, as the export does. All copy within one Azurite with {CONCURRENCY} concurrent copies "
            "(MaxParallelBatches 10 × MaxParallelThreads 5, BatchSize 100). Copier CPU: this process for "
            "the baseline, the host for exports."
        ),
        results=args.results,
    )
    if args.profile:
        report(
            f"Where the host's time goes during the {small} export (py-spy)", profiled, results=args.results
        )


def profile(bench: Stack, studies: list[str], files: int, path: Path, extra: dict | None = None) -> str:
    """Record py-spy on the host during one export of `studies` (`files` files, with the `extra` request members);
    a Markdown summary of its on-CPU samples."""
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--nonblocking",
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(path),
            "-p",
            str(bench.host.process.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    name = f"prof-{uuid.uuid4().hex[:12]}"
    bench.container(name)
    cpu = cpu_seconds(psutil.Process(bench.host.process.pid))
    done = run_export(bench.host, studies, bench.connection_string, name, extra=extra)
    cpu = cpu_seconds(psutil.Process(bench.host.process.pid)) - cpu
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)
    parts = table(
        ["share of samples", "part of the host"],
        [[f"{share:.0%}", part] for part, share in summarise(path)],
    )
    frames = table(
        ["share", "function on top of the stack"],
        [[f"{share:.1%}", f"`{frame}`"] for frame, share in top_frames(path)],
    )
    return (
        f"One export of {files} files in {done.seconds:.1f} s; the host used {cpu:.1f} s of CPU. "
        f"Samples at 200 Hz of every thread running on a CPU (`py-spy record --nonblocking`), raw "
        f"stacks in `{path}`.\n\n{parts}\n\n{frames}"
    )


WALL = ["first listing s", "tails s", "between generations s"]


def wall_time(runs: list[dict], before: str | None) -> list[list]:
    """Rows: an export's seconds, and how much of them the listing, tails and generation changes took."""
    tags = [("export", "export"), *([("before", f"export at {before}")] if before else [])]
    return [
        [
            name,
            f"{median([r[f'{tag}_s'] for r in runs]):.2f}",
            f"{median([r[f'{tag}_generations'] for r in runs]):.0f}",
            *(f"{median([r[f'{tag}_{key}'] for r in runs]):.2f}" for key in WALL),
        ]
        for tag, name in tags
    ]


def summary(runs: list[dict], files: int, total_bytes: int, before: str | None) -> list[list]:
    """Table rows (copier, files/s, MB/s, ratios to the baseline and the script, CPU) for each copier."""

    def row(name: str, tag: str, cpu: str) -> list:
        s = median([r[f"{tag}_s"] for r in runs])
        return [
            name,
            f"{files / s:.0f}",
            f"{total_bytes / 1e6 / s:.0f}",
            *(f"{median([r[f'{base}_s'] / r[f'{tag}_s'] for r in runs]):.2f}" for base in PEERS),
            f"{median([r[cpu] for r in runs]):.1f}",
            f"{median([r[f'{tag}_azurite_cpu'] for r in runs]):.1f}",
        ]

    rows = [
        row("baseline (thread pool)", "raw", "raw_cpu"),
        row("baseline + hash", "raw_hash", "raw_hash_cpu"),
        row("script (list each study, copy)", "script", "script_cpu"),
        row("script + hash", "script_hash", "script_hash_cpu"),
        row("export", "export", "export_host_cpu"),
    ]
    if before:
        rows.append(row(f"export at {before}", "before", "before_host_cpu"))
    return rows

if __name__ == "__main__":
    main()
