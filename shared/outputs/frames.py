"""The frames of a spooled instance, decoded one at a time from its file.

Native pixel data is read a frame-sized slice at a time; encapsulated pixel data a frame's fragments at
a time (PS3.5 A.4), both by pydicom's decoders with the plugins in requirements.txt. Only the frame
being decoded is in memory. Two cases fall back to decoding the whole data set in memory:
- a deflated file (its pixel data sits inside one zlib stream; pydicom inflates the whole data set);
- a file whose pixel data pydicom cannot decode from a file (it then tries the parsed data set).

    for array, properties in decoded_frames(instance):
        ...  # properties: the Image Pixel values that describe `array` (photometric interpretation...)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import as_pixel_options
from pydicom.uid import UID, JPEGExtended12Bit

from shared.outputs.instance import Instance
from shared.outputs.types import NotProduced

PIXEL_DATA_TAG = (0x7FE0, 0x0010)
UNDEFINED = 0xFFFFFFFF

Frame = tuple[np.ndarray, dict[str, Any]]


@dataclass(frozen=True)
class PixelElement:
    """Where the Pixel Data element sits in the file: its value starts at `value` and ends at `end`."""

    vr: str | None
    value: int
    length: int  # UNDEFINED when encapsulated
    end: int


def locate(instance: Instance) -> PixelElement | None:
    """The Pixel Data element of `instance`'s file; None when it cannot be read in place (deflated, none)."""
    syntax = UID(str(instance.header.file_meta.get("TransferSyntaxUID", "")))
    if instance.pixel_offset >= instance.size or syntax.is_deflated:
        return None
    order = "<" if syntax.is_little_endian else ">"
    file = instance.file
    file.seek(instance.pixel_offset)
    group, element = struct.unpack(f"{order}HH", file.read(4))
    if (group, element) != PIXEL_DATA_TAG:
        return None
    vr = None
    if syntax.is_implicit_VR:
        (length,) = struct.unpack(f"{order}L", file.read(4))
    else:
        vr = file.read(2).decode("ascii", "replace")
        (length,) = struct.unpack(f"{order}2xL", file.read(6))
    value = file.tell()
    end = value + length if length != UNDEFINED else _fragments_end(instance, order)
    return PixelElement(vr, value, length, min(end, instance.size))


def _fragments_end(instance: Instance, order: str) -> int:
    """The offset just past the Sequence Delimitation Item that closes encapsulated pixel data."""
    file = instance.file
    while True:
        head = file.read(8)
        if len(head) < 8:
            return instance.size
        group, element, length = struct.unpack(f"{order}HHL", head)
        if (group, element) == (0xFFFE, 0xE0DD):
            return file.tell()
        file.seek(length, 1)


def decoded_frames(instance: Instance) -> Iterator[Frame]:
    """Each frame as an array (YBR converted to RGB, as pydicom does) with the Image Pixel values describing it.

    NotProduced, saying which syntax, when no decoder reads the pixel data.
    """
    try:
        yield from _frames(instance)
    except NotProduced:
        raise
    except Exception as error:  # noqa: BLE001 - the decoders raise many kinds; none quotes patient data
        raise NotProduced(undecodable(instance.header, error)) from None


def undecodable(header: Dataset, error: BaseException) -> str:
    """Why the pixel data of `header`'s instance cannot be decoded, naming its syntax and bits, not its values."""
    syntax = UID(str(header.file_meta.get("TransferSyntaxUID", "")))
    bits = header.get("BitsStored", "?")
    why = f"its pixel data ({syntax.name}, {bits} bits stored) cannot be decoded ({type(error).__name__})"
    if syntax == JPEGExtended12Bit and str(bits) != "8":
        why += ": the only decoder of 12-bit JPEG Extended, pylibjpeg-libjpeg, is GPL and not installed"
    return why


def _frames(instance: Instance) -> Iterator[Frame]:
    header = instance.header
    syntax = UID(str(header.file_meta.get("TransferSyntaxUID", "")))
    pixels = locate(instance)
    if pixels is None:
        yield from _whole(instance)
        return
    options = as_pixel_options(header, transfer_syntax_uid=syntax, pixel_keyword="PixelData")
    if pixels.vr:
        options["pixel_vr"] = pixels.vr
    instance.file.seek(pixels.value)
    given = 0
    try:
        for array, properties in get_decoder(syntax).iter_array(instance.file, as_rgb=True, **options):
            given += 1
            yield _little_endian(array), properties
    except Exception as error:
        if given:
            raise
        # a ValueError is pydicom's frame iterator tripping on the file (a read-only array it must correct):
        # it trips on the parsed data set too, so go straight to decoding it all at once
        yield from _whole(instance, frame_by_frame=not isinstance(error, ValueError))


def _whole(instance: Instance, frame_by_frame: bool = True) -> Iterator[Frame]:
    """The frames of the data set parsed whole; all decoded at once where pydicom's frame iterator trips on it."""
    ds = instance.whole()
    if "PixelData" not in ds:
        raise NotProduced("has no pixel data")
    if frame_by_frame:
        given = 0
        try:
            for array, properties in get_decoder(ds.file_meta.TransferSyntaxUID).iter_array(ds, as_rgb=True):
                given += 1
                yield _little_endian(array), properties
            return
        except ValueError:  # e.g. pydicom correcting a pixel representation mismatch on a read-only array
            if given:
                raise
    yield from _all_at_once(ds)


def _all_at_once(ds: Dataset) -> Iterator[Frame]:
    """pydicom's `pixel_array`, frame by frame, described by the header (YBR comes out as RGB)."""
    properties = as_pixel_options(ds)
    if str(properties["photometric_interpretation"]).startswith("YBR") and properties["samples_per_pixel"] == 3:
        properties["photometric_interpretation"] = "RGB"  # pydicom converts YBR to RGB when it decodes
    everything = ds.pixel_array
    for array in everything if int(properties["number_of_frames"]) > 1 else [everything]:
        yield _little_endian(array), properties


def _little_endian(array: np.ndarray) -> np.ndarray:
    return array if array.dtype.byteorder != ">" else array.astype(array.dtype.newbyteorder("<"))
