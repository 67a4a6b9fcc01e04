"""The app on the local host, with its own store container per test module, and clients for it."""

from __future__ import annotations

import re
import uuid

import pytest
from dicomweb_client import DICOMwebClient

from shared.stores.blob.store import DicomStore
from testkit.host import ROOT, Host


@pytest.fixture(scope="module")
def container(request: pytest.FixtureRequest) -> str:
    module = re.sub(r"[^a-z0-9]+", "-", request.module.__name__.rsplit(".", 1)[-1].lower()).strip("-")
    return f"{module[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def host(storage_connection_string: str, container: str, tmp_path_factory: pytest.TempPathFactory) -> Host:
    env = {"AzureWebJobsStorage": storage_connection_string, "DicomStore__ContainerName": container}
    host = Host(ROOT, tmp_path_factory.mktemp("dicomweb") / "hub", env=env).start()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def store(storage_connection_string: str, container: str) -> DicomStore:
    """The host's store, read directly to check what was (not) written."""
    return DicomStore.from_settings(
        {"AzureWebJobsStorage": storage_connection_string, "DicomStore__ContainerName": container}
    )


@pytest.fixture(scope="module")
def client(host: Host) -> DICOMwebClient:
    return DICOMwebClient(url=host.base_url)
