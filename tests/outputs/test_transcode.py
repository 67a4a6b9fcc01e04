"""Transcoding pydicom's own files: decoded pixels must equal pydicom's decoding of the original."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset

from shared.outputs.instance import spooled
from shared.outputs.transcode import transcode as transcode_instance
from shared.outputs.types import NotProduced
from testkit.shipped import FOLDER, encoded, load, readable, with_pixels

LOSSLESS = [uid.JPEG2000Lossless, uid.JPEGLSLossless, uid.RLELossless]


def transcode(raw: bytes, target: str) -> tuple[Dataset, bytes]:
    """(the header written, the file written) of `raw` transcoded to `target`."""
    with spooled([raw]) as instance:
        ds, chunks = transcode_instance(instance, target)
        return ds, b"".join(chunks)


def _decoded(data: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data)).pixel_array


@pytest.mark.parametrize("path", with_pixels(compressed=True), ids=os.path.basename)
def test_every_compressed_file_to_explicit_vr_little_endian_keeps_its_pixels(path: str) -> None:
    ds, raw = load(path)
    expected = ds.pixel_array.copy()
    written, data = transcode(raw, uid.ExplicitVRLittleEndian)
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == uid.ExplicitVRLittleEndian
    assert np.array_equal(_decoded(data), expected)
    assert written.SOPInstanceUID == load(path)[0].SOPInstanceUID  # lossless: the same instance


@pytest.mark.parametrize("target", LOSSLESS)
@pytest.mark.parametrize("path", [p for p in with_pixels(compressed=False)
                                  if os.path.basename(p) in ("CT_small.dcm", "MR_small_bigendian.dcm",
                                                             "SC_rgb.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm",
                                                             "emri_small.dcm", "SC_rgb_16bit.dcm")],
                         ids=os.path.basename)
def test_lossless_round_trips_are_exact(path: str, target: str) -> None:
    ds, raw = load(path)
    expected = ds.pixel_array.copy()
    _, there = transcode(raw, target)
    assert pydicom.dcmread(io.BytesIO(there)).file_meta.TransferSyntaxUID == target
    assert np.array_equal(_decoded(there), expected)
    _, back = transcode(there, uid.ExplicitVRLittleEndian)
    assert np.array_equal(_decoded(back), expected)


def test_deflated_and_implicit_targets_keep_pixels() -> None:
    path = next(p for p in readable() if p.endswith("CT_small.dcm"))
    ds, raw = load(path)
    expected = ds.pixel_array.copy()
    for target in (uid.DeflatedExplicitVRLittleEndian, uid.ImplicitVRLittleEndian):
        _, data = transcode(raw, target)
        assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == target
        assert np.array_equal(_decoded(data), expected)


def test_an_instance_in_the_target_syntax_or_without_pixels_is_copied_as_is() -> None:
    same = next(p for p in with_pixels() if load(p)[0].file_meta.TransferSyntaxUID == uid.ExplicitVRLittleEndian)
    raw = load(same)[1]
    assert transcode(raw, uid.ExplicitVRLittleEndian)[1] == raw
    no_pixels = next(p for p in readable() if "PixelData" not in load(p)[0])
    raw = load(no_pixels)[1]
    assert transcode(raw, uid.JPEG2000Lossless)[1] == raw


def test_a_lossy_target_records_its_compression_and_gets_a_new_instance_uid() -> None:
    path = next(p for p in readable() if p.endswith("CT_small.dcm"))
    ds, raw = load(path)
    original = ds.SOPInstanceUID
    _, data = transcode(raw, uid.JPEG2000)
    again = pydicom.dcmread(io.BytesIO(data))
    assert again.LossyImageCompression == "01"
    assert again.LossyImageCompressionMethod == "ISO_15444_1"
    assert float(again.LossyImageCompressionRatio) > 1
    assert again.SOPInstanceUID != original
    assert again.SOPInstanceUID == transcode(raw, uid.JPEG2000)[0].SOPInstanceUID  # stable


def test_a_file_no_codec_can_encode_is_skipped_with_a_reason() -> None:
    raw = load(next(p for p in readable() if p.endswith("/SC_rgb_rle_32bit.dcm")))[1]
    with pytest.raises(NotProduced, match="cannot be transcoded to JPEG-LS Lossless"):
        transcode(raw, uid.JPEGLSLossless)  # JPEG-LS holds at most 16 bits a sample


def test_a_file_no_decoder_reads_is_skipped_naming_its_syntax() -> None:
    ds = load(next(p for p in readable() if p.endswith("/CT_small.dcm")))[0]
    ds.BitsStored = 40  # nonsense no decoder accepts
    with pytest.raises(NotProduced, match=r"pixel data \(Explicit VR Little Endian, 40 bits stored\) cannot be"):
        transcode(encoded(ds), uid.JPEGLSLossless)


def test_12_bit_jpeg_extended_is_skipped_saying_its_decoder_is_gpl() -> None:
    raw = (Path(FOLDER) / "JPEG-lossy.dcm").read_bytes()  # not among `readable()`: no decoder here reads it
    with pytest.raises(NotProduced, match="12 bits stored.*pylibjpeg-libjpeg, is GPL"):
        transcode(raw, uid.ExplicitVRLittleEndian)


def test_a_frame_that_fails_to_decode_gives_nothing_to_write() -> None:
    raw = load(next(p for p in readable() if p.endswith("/SC_rgb_rle_2frame.dcm")))[1]
    last = raw.rfind(b"\xfe\xff\x00\xe0") + 8  # the second frame's fragment, which starts with its RLE header
    broken = raw[:last] + bytes(64) + raw[last + 64:]  # a header of no segments
    undecodable = r"pixel data \(RLE Lossless, 8 bits stored\) cannot be decoded"
    with spooled([broken]) as instance, pytest.raises(NotProduced, match=undecodable):
        transcode_instance(instance, uid.ExplicitVRLittleEndian)  # raises before giving a first block
