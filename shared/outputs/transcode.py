"""Re-encode one instance's pixel data in the transfer syntax the export asked for, a frame at a time.

Decoding uses pydicom's pixel decoders with the plugins in requirements.txt (pylibjpeg with
openjpeg and rle, pyjpegls, python-gdcm): any stored syntax one of them reads is accepted.
Encoding: native syntaxes are written as they are (Deflated through zlib); RLE Lossless by pydicom
or pylibjpeg-rle, JPEG-LS by pyjpegls, JPEG 2000 by pylibjpeg-openjpeg, one frame at a time.

Memory: frames are decoded from the spooled file one at a time (shared/outputs/frames.py), each is
re-encoded and appended to a second spooled file (the new pixel data, as native bytes or one fragment
per frame); only then is the header written, because it must say what the pixel data became (its
photometric interpretation, a lossy ratio). The file is then read out a block at a time. So at most
one frame (decoded and encoded) is in memory, plus the spools' `IN_MEMORY` before they go to disk.
Pixel data of 1 bit whose frames do not end on a byte is decoded whole (pydicom packs it whole).

- An instance already in the target syntax, or without pixel data (SR, PDF, presentation
  states), is written unchanged.
- The SOP Instance UID is kept by a lossless transcoding. A lossy one records Lossy Image
  Compression, its ratio and method (PS3.3 C.7.6.1.1.5) and gets a new SOP Instance UID derived
  from the old one and the syntax (the same on a retry, so a retried batch rewrites the same blob).
- Colour data compressed as YBR by a lossy codec is decoded to RGB, as pydicom does.
- The encapsulated pixel data written has one fragment per frame and an empty Basic Offset Table.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
from pydicom.dataset import Dataset, FileDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.pixels import get_encoder, pack_bits
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from shared.outputs.frames import PixelElement, decoded_frames, locate
from shared.outputs.instance import IN_MEMORY, Instance
from shared.outputs.syntaxes import LOSSY_TARGETS, NATIVE, TARGETS
from shared.outputs.types import NotProduced
from shared.transfer import BLOCK_SIZE

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# The Image Pixel values the decoders report about a frame, as the encoders take them.
IMAGE_PIXEL = ("rows", "columns", "samples_per_pixel", "bits_allocated", "bits_stored", "pixel_representation",
               "photometric_interpretation")
ITEM, SEQUENCE_END = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def transcode(instance: Instance, target: str) -> tuple[Dataset, Iterator[bytes]]:
    """(the header written, the new file's bytes a block at a time) in syntax `target`; NotProduced when it cannot be.

    Everything is decoded and encoded before the first block is given, so a failure writes nothing.
    """
    ds = instance.header
    stored = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    pixels = locate(instance)
    if pixels is None:  # no pixel data, float pixel data, or a deflated file: parsed whole (small in practice)
        whole = instance.whole()
        if any(k in whole for k in PIXEL_KEYWORDS[1:]):
            raise NotProduced("float pixel data cannot be transcoded")
        if "PixelData" not in whole:
            return ds, instance.chunks()
    if stored == target:
        return ds, instance.chunks()
    out = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # noqa: SIM115 - closed when the reader is done
    try:
        frames, native, encoded = _pixel_data(instance, target, out)
        _set_header(ds, target, frames, native, encoded)
        head = _head(ds, target, native if target in NATIVE else None)
        tail = (SEQUENCE_END if target not in NATIVE else b"") + _trailing(instance, pixels, stored, target)
    except NotProduced:
        out.close()
        raise
    except Exception as error:  # noqa: BLE001 - the codecs raise many kinds; none quotes patient data
        out.close()
        raise NotProduced(f"cannot be transcoded to {TARGETS[target]}: {type(error).__name__}") from None
    return ds, _file(head, out, tail, deflate=target == DeflatedExplicitVRLittleEndian)


def _pixel_data(instance: Instance, target: str, out: IO[bytes]) -> tuple[int, int, int]:
    """Write the new pixel data's value to `out` (native, or items of one frame each); (frames, native size, size).

    The decoders' Image Pixel values for the frames are set on the header as they come.
    """
    ds = instance.header
    encapsulated = target not in NATIVE
    if encapsulated:
        out.write(ITEM + b"\x00\x00\x00\x00")  # an empty Basic Offset Table
    settings = LOSSY_TARGETS.get(target, ({}, ""))[0]
    encoder = get_encoder(UID(target)) if encapsulated else None
    frames = native = written = 0
    for array, properties in decoded_frames(instance):
        frames += 1
        _describe(ds, properties)
        if encoder is None:
            frame = _native_bytes(array, properties)
            native += len(frame)
            written += out.write(frame)
            continue
        native += array.nbytes
        options = {k: properties[k] for k in IMAGE_PIXEL} | {"number_of_frames": 1, "planar_configuration": 0}
        data = encoder.encode(array, **options, **settings)
        data += b"\x00" * (len(data) % 2)
        written += out.write(ITEM + struct.pack("<L", len(data)) + data)
    if not encapsulated and native % 2:
        written += out.write(b"\x00")
    return frames, native, written


def _native_bytes(array: np.ndarray, properties: dict[str, Any]) -> bytes:
    if properties["bits_allocated"] != 1:
        return array.tobytes()
    if array.size % 8:
        raise ValueError("1-bit frames that do not end on a byte")
    return pack_bits(array)


def _describe(ds: Dataset, properties: dict[str, Any]) -> None:
    """The header says what the decoded frames are (as pydicom's decompress does)."""
    ds.PhotometricInterpretation = properties["photometric_interpretation"]
    if int(properties["samples_per_pixel"]) > 1:
        ds.PlanarConfiguration = 0


def _set_header(ds: Dataset, target: str, frames: int, native: int, encoded: int) -> None:
    if "NumberOfFrames" in ds or frames > 1:
        ds.NumberOfFrames = frames
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):  # they described the old fragments
        if keyword in ds:
            del ds[keyword]
    method = LOSSY_TARGETS.get(target, ({}, ""))[1]
    if method:
        _record_lossy(ds, native / max(1, encoded), method, target)
    ds.file_meta.TransferSyntaxUID = UID(target)


def _head(ds: Dataset, target: str, native_size: int | None) -> tuple[bytes, bytes]:
    """(preamble and file meta, the data set up to the Pixel Data's value); `native_size` None: encapsulated."""
    meta = DicomBytesIO()
    meta.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    body = _encoded(ds, target)
    implicit = target == ImplicitVRLittleEndian
    if native_size is None:
        element = b"\xe0\x7f\x10\x00OB\x00\x00" + struct.pack("<L", 0xFFFFFFFF)
    else:
        length = native_size + native_size % 2
        vr = b"OB" if int(ds.BitsAllocated) <= 8 else b"OW"
        element = b"\xe0\x7f\x10\x00" + (struct.pack("<L", length) if implicit else vr + b"\x00\x00" +
                                          struct.pack("<L", length))
    return meta.getvalue(), body + element


def _encoded(ds: Dataset, target: str) -> bytes:
    """`ds` (no pixel data) in the target's little-endian encoding.

    Elements still as read are written as read when the encoding is the same (pydicom's fast path); a
    few files hold values it cannot write back that way, and are written again with every element decoded.
    """
    try:
        return _written(ds, target)
    except (TypeError, ValueError):
        for _ in ds.iterall():
            pass
        return _written(ds, target)


def _written(ds: Dataset, target: str) -> bytes:
    body = DicomBytesIO()
    body.is_little_endian = True
    body.is_implicit_VR = target == ImplicitVRLittleEndian
    write_dataset(body, ds)
    return body.getvalue()


def _trailing(instance: Instance, pixels: PixelElement | None, stored: UID, target: str) -> bytes:
    """The elements after the pixel data (signatures, padding), in the target's encoding."""
    if pixels is None or pixels.end >= instance.size:
        return b""
    instance.file.seek(pixels.end)
    after = read_dataset(instance.file, stored.is_implicit_VR, stored.is_little_endian)
    return _encoded(after, target)


def _file(head: tuple[bytes, bytes], pixels: IO[bytes], tail: bytes, deflate: bool) -> Iterator[bytes]:
    """The meta, then the data set (deflated when asked) a block at a time, `tail` last; `pixels` closed at the end."""
    meta, body = head
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS) if deflate else None

    def packed(data: bytes) -> bytes:
        return compressor.compress(data) if compressor else data

    try:
        yield meta + packed(body)
        pixels.seek(0)
        while block := pixels.read(BLOCK_SIZE):
            yield packed(block)
        ending = packed(tail)
        if compressor:
            ending += compressor.flush()
        if ending:
            yield ending
    finally:
        pixels.close()


def _record_lossy(ds: Dataset, ratio: float, method: str, target: str) -> None:
    """PS3.3 C.7.6.1.1.5: once lossy, always marked so; every lossy step appends its ratio and method."""
    ratios = [str(r) for r in ds.get("LossyImageCompressionRatio", []) or []] if ds.get(
        "LossyImageCompression") == "01" else []
    methods = [str(m) for m in ds.get("LossyImageCompressionMethod", []) or []] if ratios else []
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.4g}"[:16]]
    ds.LossyImageCompressionMethod = [*methods, method]
    new = generate_uid(entropy_srcs=[str(ds.SOPInstanceUID), target])
    ds.SOPInstanceUID = new
    if isinstance(ds, FileDataset) or hasattr(ds, "file_meta"):
        ds.file_meta.MediaStorageSOPInstanceUID = new
