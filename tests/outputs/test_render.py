"""Rendering frames as PNG/JPEG: the count, size and mode of the images, and the values of a known window."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from shared.outputs.instance import spooled
from shared.outputs.render import render as render_instance
from shared.outputs.types import NotProduced, OutputFile
from testkit.shipped import encoded, load, readable, with_pixels


def render(ds: Dataset | bytes, name: str, fmt: str, **options: object) -> list[OutputFile]:
    """The images of `ds` (or of the file `ds`), each one's bytes in one chunk."""
    with spooled([ds if isinstance(ds, bytes) else encoded(ds)]) as instance:
        return [OutputFile(f.name, [b"".join(f.chunks)], f.content_type, f.frame)
                for f in render_instance(instance, name, fmt, **options)]  # type: ignore[arg-type]


def _image(file: OutputFile) -> Image.Image:
    (data,) = file.chunks
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("path", with_pixels(), ids=os.path.basename)
def test_every_image_renders_one_png_per_frame_of_its_size(path: str) -> None:
    ds, raw = load(path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    colour = int(ds.get("SamplesPerPixel", 1)) == 3 or ds.PhotometricInterpretation == "PALETTE COLOR"
    files = render(raw, "s/se/sop", "png", bit_depth=16)
    assert [f.name for f in files] == [f"s/se/sop/{n}.png" for n in range(1, frames + 1)]
    for file in files:
        image = _image(file)
        assert image.size == (ds.Columns, ds.Rows)
        assert image.mode == ("RGB" if colour else "I;16")


def test_jpeg_frames_are_8_bit() -> None:
    ds, _ = load(next(p for p in readable() if p.endswith("/CT_small.dcm")))
    (file,) = render(ds, "a/b/c", "jpeg", quality=90)
    assert file.name == "a/b/c/1.jpg" and file.content_type == "image/jpeg"
    assert _image(file).mode == "L"


def _ramp(photometric: str = "MONOCHROME2", **header: object) -> Dataset:
    """A 1×5 image of stored values 0, 100, 200, 300, 400 (slope 1, intercept -200: -200 … 200)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = "1.2.3.4"
    ds.set_pixel_data(np.array([[0, 100, 200, 300, 400]], dtype=np.uint16), photometric, 12,
                      generate_instance_uid=False)
    ds.RescaleSlope, ds.RescaleIntercept = 1, -200
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    return ds


def _pixels(ds: Dataset, **options: object) -> list[int]:
    (file,) = render(ds, "a/b/c", "png", **options)
    return list(np.asarray(_image(file)).ravel())


def test_an_explicit_window_gives_known_values() -> None:
    # PS3.3 C.11.2.1.2.1: (x - (c - 0.5)) / (w - 1) + 0.5, clipped to 0 … 1; here x / 400 + 0.5
    assert _pixels(_ramp(), window=(0.5, 401.0)) == [0, 64, 128, 191, 255]
    assert _pixels(_ramp(), window=(0.5, 201.0)) == [0, 0, 128, 255, 255]  # x / 200 + 0.5


def test_auto_uses_the_headers_first_window_and_minmax_the_frames_range() -> None:
    ds = _ramp(WindowCenter=[0.5, 500], WindowWidth=[201, 1000])
    assert _pixels(ds, window="auto") == [0, 0, 128, 255, 255]
    assert _pixels(ds, window="minmax") == [0, 64, 128, 191, 255]
    assert _pixels(_ramp(), window="auto") == [0, 64, 128, 191, 255]  # no window in the header


def test_monochrome1_is_inverted_and_16_bit_keeps_the_range() -> None:
    assert _pixels(_ramp("MONOCHROME1"), window="minmax") == [255, 191, 128, 64, 0]
    assert _pixels(_ramp(), window="minmax", bit_depth=16) == [0, 16384, 32768, 49151, 65535]


def test_a_non_image_is_refused_with_a_reason() -> None:
    with pytest.raises(NotProduced, match="no pixel data"):
        empty = Dataset()
        empty.file_meta = FileMetaDataset()
        empty.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        empty.SOPClassUID, empty.SOPInstanceUID = SecondaryCaptureImageStorage, "1.2.3.4"
        render(empty, "a/b/c", "png")
