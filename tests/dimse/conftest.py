"""The DIMSE tests share the session's Orthanc (its DICOM port as the PACS) and the DICOMweb tests' files."""

from __future__ import annotations

import io

import psutil
import pydicom
from pydicom.filereader import _read_file_meta_info

from tests.orthanc.conftest import orthanc  # noqa: F401 - the session's Orthanc, shared with tests/orthanc
from tests.orthanc_server import Orthanc


def after_meta(data: bytes) -> bytes:
    """The bytes after the File Meta group: the dataset as encoded."""
    stream = io.BytesIO(data)
    stream.seek(132)
    _read_file_meta_info(stream)
    return data[stream.tell():]


def assert_as_stored(got: bytes, stored: bytes, what: str) -> bool:
    """`got` is the instance `stored` as the PACS sent it: the same transfer syntax, SOP class and instance, pixel
    bytes and elements. Orthanc's DICOM sender (DCMTK) re-encodes undefined-length sequences with explicit lengths
    and drops trailing padding; True when the bytes after the meta group are identical too."""
    sent, original = pydicom.dcmread(io.BytesIO(got)), pydicom.dcmread(io.BytesIO(stored))
    assert sent.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID, what
    assert sent.file_meta.MediaStorageSOPClassUID == original.SOPClassUID, what
    assert sent.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID, what
    assert sent.get("PixelData") == original.get("PixelData"), what
    original.pop(0xFFFCFFFC, None)
    assert list(sent) == list(original), what
    return after_meta(got) == after_meta(stored)


def pacs_connections(pacs: Orthanc, pid: int | None = None) -> int:
    """Established TCP connections to the PACS's DICOM port from process `pid` (default: this one) and its children."""
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    found = 0
    for process in processes:
        try:
            found += sum(1 for c in process.net_connections(kind="tcp")
                         if c.raddr and c.raddr.port == pacs.dicom_port and c.status == psutil.CONN_ESTABLISHED)
        except psutil.NoSuchProcess:
            pass
    return found
