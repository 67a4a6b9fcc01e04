"""The outputs tests against the external stores share the session's Orthanc with tests/orthanc and tests/dimse."""

from tests.orthanc.conftest import orthanc  # noqa: F401 - the session's Orthanc, started only when a test asks
