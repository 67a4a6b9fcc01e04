"""One Orthanc for the session (testkit/orthanc.py), and DICOM files made for each test."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest

from testkit.orthanc import Orthanc
from testkit.seed import uid

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
TEMPLATE = TEST_FILES / "CT_small.dcm"
# Stored as they are, to see them come back byte for byte: compressed and uncompressed transfer syntaxes.
AS_THEY_ARE = ("JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_RLE.dcm", "JPEG-lossy.dcm",
               "SC_rgb_small_odd.dcm")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Orthanc:
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.stop()


def make_study(series: int, instances: int, study: str | None = None) -> dict[str, bytes]:
    """A study of `series` × `instances` CT files with fresh UIDs: `<study>/<series>/<sop>.dcm` → bytes."""
    template = pydicom.dcmread(TEMPLATE)
    study = study or uid()
    made = {}
    for _ in range(series):
        series_uid = uid()
        for _ in range(instances):
            template.StudyInstanceUID, template.SeriesInstanceUID = study, series_uid
            template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = uid()
            buffer = io.BytesIO()
            template.save_as(buffer)
            made[f"{study}/{series_uid}/{template.SOPInstanceUID}.dcm"] = buffer.getvalue()
    return made


def files_as_they_are() -> dict[str, bytes]:
    """pydicom's own files, their bytes and UIDs untouched."""
    found = {}
    for name in AS_THEY_ARE:
        data = (TEST_FILES / name).read_bytes()
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        found[f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"] = data
    return found
