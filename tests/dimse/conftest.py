"""The DIMSE store's tests share one Orthanc (its DICOM port as the PACS) and the DICOMweb tests' files."""

from __future__ import annotations

from tests.orthanc.conftest import orthanc  # noqa: F401 - the session's Orthanc, shared with tests/orthanc
