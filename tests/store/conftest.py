"""A fresh store container per test, on the session's Azurite."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.stores.blob.store import DicomStore


@pytest.fixture
def store(storage_connection_string: str) -> DicomStore:
    container = f"store-{uuid.uuid4().hex[:12]}"
    store = DicomStore.from_settings(
        {"AzureWebJobsStorage": storage_connection_string, "DicomStore__ContainerName": container}
    )
    yield store
    try:
        store.container.delete_container()
    except ResourceNotFoundError:
        pass
