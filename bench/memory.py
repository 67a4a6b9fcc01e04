"""Peak memory of the host during exports: one 1 GiB instance (copied, and de-identified), and 10 000 small ones.

    .venv/bin/python -m bench.memory [--runs 3] [--large-mib 1024] [--small 10000] [--small-kib 16]

Starts Azurite and the local host with the published defaults (BatchSize 100, MaxParallelBatches 10,
MaxParallelThreads 5), reads the idle host's RSS, then seeds the store directly: one DICOM instance of
`--large-mib` MiB (its pixel data generated into a temporary file, uploaded streamed from that file) and
`--small` instances of `--small-kib` KiB in 10 studies. Per run it exports each to a fresh container while
sampling the host's RSS (process and children) every 10 ms; the large one is also exported de-identified
(Basic Profile: its header rewritten, its pixel data streamed through). Prints and appends to bench/RESULTS.md the
median peak above the idle host; the target is at most 150 MiB.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path

from bench.measure import KIB, MIB, PeakRss, median, repeat, run_export, settle_rss
from bench.report import add_results_argument, report, table
from testkit.instances import encode, make_dataset
from testkit.seed import seed, uid, upload_file
from testkit.stack import Stack, stack

TARGET_MIB = 150


def write_large_instance(path: Path, study: str, series: str, sop: str, pixel_bytes: int) -> None:
    """A valid DICOM file whose last element is `pixel_bytes` of OB pixel data, written a block at a time."""
    header = encode(make_dataset(study, series, sop, pixel_bytes=0))
    assert header[-12:-4] == b"\xe0\x7f\x10\x00OB\x00\x00", "pixel data must be the last element"
    block = os.urandom(4 * MIB)
    with open(path, "wb") as f:
        f.write(header[:-4] + pixel_bytes.to_bytes(4, "little"))
        left = pixel_bytes
        while left:
            f.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def export_peak(bench: Stack, studies: list[str], expected: int, idle: int, deidentification: dict | None) -> dict:
    name = f"mem-{uuid.uuid4().hex[:12]}"
    target = bench.container(name)
    with PeakRss(bench.host.process.pid) as sampled:
        done = run_export(bench.host, studies, bench.connection_string, name, deidentification=deidentification)
    if done.view["results"]["exported"] != expected:
        raise SystemExit(f"export copied {done.view['results']}, expected {expected}")
    target.delete_container()
    return {
        "seconds": done.seconds,
        "peak_mib": sampled.peak / MIB,
        "above_idle_mib": (sampled.peak - idle) / MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=10000)
    parser.add_argument("--small-kib", type=int, default=16)
    add_results_argument(parser)
    args = parser.parse_args()
    with stack() as bench:
        idle = settle_rss(bench.host.process.pid, 2.0)
        print(f"idle host: {idle / MIB:.0f} MiB", flush=True)
        store = bench.store()
        large_study = uid()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "large.dcm"
            write_large_instance(
                path, large_study, f"{large_study}.1", f"{large_study}.1.1", args.large_mib * MIB
            )
            size = path.stat().st_size
            upload_file(store, f"{large_study}/{large_study}.1/{large_study}.1.1.dcm", path)
        print(f"seeding {args.small} instances of {args.small_kib} KiB ...", flush=True)
        small = seed(store, 10, args.small // 10, args.small_kib * KIB)
        cases = [
            (f"one instance of {size / MIB:,.0f} MiB", [large_study], 1, None),
            (f"one instance of {size / MIB:,.0f} MiB, de-identified", [large_study], 1, {"profile": "basic"}),
            (f"{len(small.files):,} instances of {args.small_kib} KiB", small.studies, len(small.files), None),
        ]
        rows = []
        for label, studies, expected, deid in cases:
            print(label, flush=True)
            runs = repeat(
                args.runs,
                lambda _, studies=studies, expected=expected, deid=deid: export_peak(
                    bench, studies, expected, idle, deid),
            )
            above = median([r["above_idle_mib"] for r in runs])
            rows.append(
                [
                    label,
                    f"{median([r['seconds'] for r in runs]):.1f}",
                    f"{idle / MIB:.0f}",
                    f"{median([r['peak_mib'] for r in runs]):.0f}",
                    f"{above:.0f}",
                    "yes" if above <= TARGET_MIB else f"no (+{above - TARGET_MIB:.0f} MiB)",
                ]
            )
    body = table(
        ["export", "seconds", "idle host MiB", "peak MiB", "peak above idle MiB", f"≤ {TARGET_MIB} MiB"], rows
    )
    report(
        "Memory: host RSS during an export",
        body,
        notes=(
            f"Medians of {args.runs} runs. RSS of the host process (and children) sampled every 10 ms "
            "with psutil; idle is the freshly started host before any export. Defaults: BatchSize 100, "
            "MaxParallelBatches 10, MaxParallelThreads 5; transfers in 4 MiB blocks."
        ),
        results=args.results,
    )


if __name__ == "__main__":
    main()
