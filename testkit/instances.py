"""Small, valid DICOM Part 10 instances made with pydicom, for tests and benchmarks."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

OMIT = object()  # as an attribute value: remove that element


def make_dataset(study: str | None = None, series: str | None = None, sop: str | None = None,
                 pixel_bytes: int = 64, **attributes) -> Dataset:
    """A Secondary Capture instance with `pixel_bytes` of OB pixel data; `attributes` override or
    (with the value `OMIT`) remove elements, so tests can break exactly one thing."""
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop or generate_uid()
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    ds.PatientID = "TEST"
    ds.Modality = "OT"
    ds.PixelData = bytes(pixel_bytes)
    ds["PixelData"].VR = "OB"
    with warnings.catch_warnings():  # tests set invalid values on purpose
        warnings.simplefilter("ignore")
        for keyword, value in attributes.items():
            if value is OMIT:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID(str(ds.get("SOPInstanceUID") or generate_uid()))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = bytes(128)  # as a data set read from a file has: dcmwrite then writes a Part 10 file
    return ds



def encode(ds: Dataset) -> bytes:
    """The dataset as a DICOM Part 10 file."""
    buffer = io.BytesIO()
    write(ds, buffer)
    return buffer.getvalue()


def write(ds: Dataset, target: str | Path | BinaryIO) -> None:
    with warnings.catch_warnings():  # tests write invalid values on purpose
        warnings.simplefilter("ignore")
        dcmwrite(target, ds, enforce_file_format=True)


def make_instance(**kwargs) -> bytes:
    return encode(make_dataset(**kwargs))


def multipart(*parts: bytes, boundary: str = "test-boundary", content_type: str = "application/dicom") -> bytes:
    """A multipart/related body with one `content_type` part per item."""
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: " + content_type.encode() + b"\r\n\r\n" + part + b"\r\n"
        for part in parts
    )
    return body + b"--" + boundary.encode() + b"--\r\n"


def stow_content_type(boundary: str = "test-boundary") -> str:
    return f'multipart/related; type="application/dicom"; boundary={boundary}'
