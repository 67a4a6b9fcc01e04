"""PNG encoding time and size by zlib level, on the frames a PNG export of the outputs bench renders.

    .venv/bin/python -m bench.png_level [--repeat 5]

Renders every frame of one copy of each compressed file pydicom ships (as bench/outputs.py seeds them,
8-bit, window `auto`), then encodes all of them with Pillow at zlib levels 1, 3 and 6 (Pillow's default),
in rotating order; prints the median seconds and the total size per level. Why shared/outputs/render.py
writes PNGs at level 3.
"""

from __future__ import annotations

import argparse
import io
import time
import warnings

from PIL import Image

from bench.measure import median
from bench.outputs import files
from bench.report import add_results_argument, report, table
from shared.outputs.frames import decoded_frames
from shared.outputs.instance import spooled
from shared.outputs.render import _scaled, _unit
from shared.outputs.types import NotProduced

LEVELS = (1, 3, 6)


def frames() -> list[Image.Image]:
    images = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data in files(1, 1):
            try:
                with spooled([data]) as instance:
                    photometric = str(instance.header.get("PhotometricInterpretation", ""))
                    for array, _ in decoded_frames(instance):
                        images.append(Image.fromarray(_scaled(_unit(array, instance.header, photometric, "auto"), 8)))
            except NotProduced:
                continue
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    add_results_argument(parser)
    args = parser.parse_args()
    images = frames()
    seconds: dict[int, list[float]] = {level: [] for level in LEVELS}
    sizes: dict[int, int] = {}
    for run in range(args.repeat):
        for level in LEVELS[run % len(LEVELS):] + LEVELS[:run % len(LEVELS)]:
            started, size = time.perf_counter(), 0
            for image in images:
                out = io.BytesIO()
                image.save(out, format="PNG", compress_level=level)
                size += out.tell()
            seconds[level].append(time.perf_counter() - started)
            sizes[level] = size
    rows = [[level, f"{median(seconds[level]):.3f}", f"{sizes[level] / 1024:.0f}",
             f"{median(seconds[level]) / median(seconds[6]):.2f}", f"{sizes[level] / sizes[6]:.3f}"] for level in LEVELS]
    report("PNG encoding by zlib level", table(["level", "seconds", "KiB", "/ level 6 time", "/ level 6 size"], rows),
           notes=f"{len(images)} frames, medians of {args.repeat} rounds, levels in rotating order, one thread.",
           results=args.results)


if __name__ == "__main__":
    main()
