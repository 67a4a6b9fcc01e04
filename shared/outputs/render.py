"""Render one instance as a PNG or JPEG image per frame, for vision pipelines.

Grey images: the Modality LUT (rescale or LUT), then the window: an explicit one, or `auto` (the
header's first VOI LUT or first window, else the frame's own range), or `minmax` (the frame's
range); MONOCHROME1 is inverted so that higher is always brighter. Colour images (RGB, YBR decoded
to RGB by pydicom, palette colour through its LUTs) are scaled from their stored bits to 8.
PNG is 8- or 16-bit grey (`bitDepth`); colour and JPEG are always 8-bit per channel.
Frames are decoded one at a time from the spooled file (shared/outputs/frames.py), so a multi-frame
instance never has all its frames, nor its whole pixel data, in memory.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from shared.outputs.frames import decoded_frames, locate
from shared.outputs.instance import Instance
from shared.outputs.types import NotProduced, OutputFile

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}
EXTENSIONS = {"png": "png", "jpeg": "jpg"}
# zlib level of the PNGs: 3 encodes in under half the time of Pillow's default 6 for 2 % more bytes
# (bench/RESULTS.md, `.venv/bin/python -m bench.png_level`).
PNG_LEVEL = 3


def render(instance: Instance, name: str, fmt: str, bit_depth: int = 8, window: str | tuple[float, float] = "auto",
           quality: int = 95) -> Iterator[OutputFile]:
    """One image per frame, named `<name>/<frame>.<ext>` (frames from 1); NotProduced for a non-image."""
    ds = instance.header
    if locate(instance) is None and "PixelData" not in instance.whole():
        raise NotProduced("has no pixel data (not an image), so no image was rendered")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    number = 0
    for number, (frame, _) in enumerate(decoded_frames(instance), 1):
        unit = _unit(frame, ds, photometric, window)
        image = _scaled(unit, bit_depth if fmt == "png" and unit.ndim == 2 else 8)
        out = io.BytesIO()
        pil = Image.fromarray(image)
        if fmt == "jpeg":
            pil.save(out, format="JPEG", quality=quality)
        else:
            pil.save(out, format="PNG", compress_level=PNG_LEVEL)
        yield OutputFile(f"{name}/{number}.{EXTENSIONS[fmt]}", [out.getvalue()], CONTENT_TYPES[fmt],
                         number)
    if number == 0:
        raise NotProduced("has no frames")


def _unit(frame: np.ndarray, ds: Dataset, photometric: str, window: str | tuple[float, float]) -> np.ndarray:
    """The frame as floats from 0 (black) to 1 (white): grey (rows, columns) or colour (rows, columns, 3)."""
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frame, ds)
        return rgb.astype(np.float64) / (65535 if rgb.dtype.itemsize > 1 else 255)
    if frame.ndim == 3:  # RGB, or YBR that pydicom converted to RGB
        return frame.astype(np.float64) / (2 ** int(ds.get("BitsStored", 8)) - 1)
    values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
    unit = _windowed(values, ds, window)
    return 1.0 - unit if photometric == "MONOCHROME1" else unit


def _windowed(values: np.ndarray, ds: Dataset, window: str | tuple[float, float]) -> np.ndarray:
    if isinstance(window, tuple):
        return _linear(values, *window, "LINEAR")
    if window == "auto" and ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        center, width = (_first(ds.WindowCenter), _first(ds.WindowWidth))
        if width >= 1:
            return _linear(values, center, width, str(ds.get("VOILUTFunction", "LINEAR")).strip() or "LINEAR")
    if window == "auto" and ds.get("VOILUTSequence"):
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        return np.clip(apply_voi_lut(values, ds, index=0, prefer_lut=True) / (2**bits - 1), 0.0, 1.0)
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _linear(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2: the window as a function onto 0 … 1."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((x - center) / width + 0.5, 0.0, 1.0)
    if width <= 1:
        return (x > center - 0.5).astype(np.float64)
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _first(value: Any) -> float:
    return float(value[0] if isinstance(value, MultiValue | list) else value)


def _scaled(unit: np.ndarray, depth: int) -> np.ndarray:
    top = 2**depth - 1
    return np.rint(unit * top).astype(np.uint16 if depth == 16 else np.uint8)
