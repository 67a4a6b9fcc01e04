"""Peak memory of the host during exports: one 1 GiB instance (copied, de-identified, and transcoded), and 10 000
small ones.

    .venv/bin/python -m bench.memory [--runs 3] [--large-mib 1024] [--small 10000] [--small-kib 16]
                                     [--cases copy,deidentify,transcode,small]

Starts Azurite and the local host with the published defaults (BatchSize 100, MaxParallelBatches 10,
MaxParallelThreads 5), reads the idle host's RSS, then seeds the store directly: one DICOM instance of
`--large-mib` MiB (its pixel data generated into a temporary file, uploaded streamed from that file) and
`--small` instances of `--small-kib` KiB in 10 studies. Per run it exports each to a fresh container while
sampling the host's RSS (process and children) every 10 ms; the large one is also exported de-identified
(Basic Profile: its header rewritten, its pixel data streamed through). The `transcode` case exports a second
instance of `--large-mib` MiB, an RLE Lossless multi-frame (1024 x 1024 16-bit noise frames, one frame encoded
by pydicom's RLE encoder and repeated), transcoded to Explicit VR Little Endian (`output`), which decodes every
frame. Prints and appends to bench/RESULTS.md the median peak above the idle host; the target is at most
150 MiB for copies and 300 MiB for the transcoding.
"""

from __future__ import annotations

import argparse
import os
import struct
import tempfile
import uuid
from pathlib import Path

import numpy as np
from pydicom.pixels import get_encoder
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from bench.measure import KIB, MIB, PeakRss, median, repeat, run_export, settle_rss
from bench.report import add_results_argument, report, table
from testkit.instances import encode, make_dataset
from testkit.seed import seed, uid, upload_file
from testkit.stack import Stack, stack

TARGET_MIB = 150
TRANSCODE_TARGET_MIB = 300
CASES = ("copy", "deidentify", "transcode", "small")
FRAME_SIDE = 1024
TRANSCODE = {"output": {"format": "dicom", "transferSyntax": ExplicitVRLittleEndian}}


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


def write_large_rle_instance(path: Path, study: str, series: str, sop: str, pixel_bytes: int) -> int:
    """An RLE Lossless multi-frame of about `pixel_bytes` of native pixel data, written a frame at a time; its frames."""
    frame = np.random.default_rng(0).integers(0, 2**16, (FRAME_SIDE, FRAME_SIDE), dtype=np.uint16)
    fragment = get_encoder(RLELossless).encode(
        frame, rows=FRAME_SIDE, columns=FRAME_SIDE, samples_per_pixel=1, bits_allocated=16, bits_stored=16,
        pixel_representation=0, photometric_interpretation="MONOCHROME2", number_of_frames=1)
    fragment += b"\x00" * (len(fragment) % 2)
    frames = max(1, pixel_bytes // frame.nbytes)
    ds = make_dataset(study, series, sop, Rows=FRAME_SIDE, Columns=FRAME_SIDE, SamplesPerPixel=1,
                      PhotometricInterpretation="MONOCHROME2", BitsAllocated=16, BitsStored=16, HighBit=15,
                      PixelRepresentation=0, NumberOfFrames=frames)
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = RLELossless
    item = b"\xfe\xff\x00\xe0"
    with open(path, "wb") as f:
        f.write(encode(ds) + b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff" + item + bytes(4))
        f.writelines(item + struct.pack("<L", len(fragment)) + fragment for _ in range(frames))
        f.write(b"\xfe\xff\xdd\xe0" + bytes(4))
    return frames


def export_peak(bench: Stack, studies: list[str], expected: int, idle: int, request: dict) -> dict:
    name = f"mem-{uuid.uuid4().hex[:12]}"
    target = bench.container(name)
    with PeakRss(bench.host.process.pid) as sampled:
        done = run_export(bench.host, studies, bench.connection_string, name, extra=request)
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
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    add_results_argument(parser)
    args = parser.parse_args()
    chosen = set(args.cases.split(","))
    with stack() as bench:
        idle = settle_rss(bench.host.process.pid, 2.0)
        print(f"idle host: {idle / MIB:.0f} MiB", flush=True)
        store = bench.store()
        large_study, rle_study = uid(), uid()
        cases: list[tuple[str, list[str], int, dict, int]] = []
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "large.dcm"
            if chosen & {"copy", "deidentify"}:
                write_large_instance(
                    path, large_study, f"{large_study}.1", f"{large_study}.1.1", args.large_mib * MIB
                )
                size = path.stat().st_size
                upload_file(store, f"{large_study}/{large_study}.1/{large_study}.1.1.dcm", path)
                if "copy" in chosen:
                    cases.append((f"one instance of {size / MIB:,.0f} MiB", [large_study], 1, {}, TARGET_MIB))
                if "deidentify" in chosen:
                    cases.append((f"one instance of {size / MIB:,.0f} MiB, de-identified", [large_study], 1,
                                  {"deidentification": {"profile": "basic"}}, TARGET_MIB))
            if "transcode" in chosen:
                frames = write_large_rle_instance(
                    path, rle_study, f"{rle_study}.1", f"{rle_study}.1.1", args.large_mib * MIB)
                size = path.stat().st_size
                upload_file(store, f"{rle_study}/{rle_study}.1/{rle_study}.1.1.dcm", path)
                cases.append(((f"one RLE Lossless instance of {size / MIB:,.0f} MiB ({frames} frames of "
                               f"{FRAME_SIDE}x{FRAME_SIDE}x16 bits), transcoded to Explicit VR LE"), [rle_study], 1,
                               TRANSCODE, TRANSCODE_TARGET_MIB))
        if "small" in chosen:
            print(f"seeding {args.small} instances of {args.small_kib} KiB ...", flush=True)
            small = seed(store, 10, args.small // 10, args.small_kib * KIB)
            cases.append((f"{len(small.files):,} instances of {args.small_kib} KiB", small.studies,
                          len(small.files), {}, TARGET_MIB))
        rows = []
        for label, studies, expected, request, target in cases:
            print(label, flush=True)
            runs = repeat(
                args.runs,
                lambda _, studies=studies, expected=expected, request=request: export_peak(
                    bench, studies, expected, idle, request),
            )
            above = median([r["above_idle_mib"] for r in runs])
            rows.append(
                [
                    label,
                    f"{median([r['seconds'] for r in runs]):.1f}",
                    f"{idle / MIB:.0f}",
                    f"{median([r['peak_mib'] for r in runs]):.0f}",
                    f"{above:.0f}",
                    f"{target}: " + ("yes" if above <= target else f"no (+{above - target:.0f} MiB)"),
                ]
            )
    body = table(["export", "seconds", "idle host MiB", "peak MiB", "peak above idle MiB", "within target MiB"], rows)
    report(
        "Memory: host RSS during an export",
        body,
        notes=(
            f"Medians of {args.runs} runs. RSS of the host process (and children) sampled every 10 ms "
            "with psutil; idle is the freshly started host before any export. Defaults: BatchSize 100, "
            "MaxParallelBatches 10, MaxParallelThreads 5; transfers in 4 MiB blocks. The transcoding spools the "
            "source and the new pixel data to temporary files (in memory up to 16 MiB each, then on local disk)."
        ),
        results=args.results,
    )


if __name__ == "__main__":
    main()
