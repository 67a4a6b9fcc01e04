"""Fixtures for the export's unit tests: a store and a destination container on the session's Azurite."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from cryptography.fernet import Fernet

from shared.export.destination import Destination, parse_destination
from shared.export.settings import ExportSettings
from shared.stores.blob.store import DicomStore, StoredInstance

from .receiver import Receiver, self_signed

POLICY = ExportSettings(allow_emulator=True)


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh Export__SecretKey per test, so no test writes the app's key file."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("Export__SecretKey", key)
    return key


@pytest.fixture(autouse=True)
def emulator_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests write to Azurite, which the activities (like the starter, POLICY) allow only with this setting."""
    monkeypatch.setenv("Export__AllowEmulator", "true")


@pytest.fixture
def store(storage_connection_string: str) -> DicomStore:
    store = DicomStore.from_settings(
        {"AzureWebJobsStorage": storage_connection_string, "DicomStore__ContainerName": f"store-{_tag()}"})
    store.ensure_container()
    yield store
    _delete(store.container)


@pytest.fixture
def destination(storage_connection_string: str) -> Iterator[Destination]:
    """An existing, empty destination container, reached with the emulator's connection string."""
    yield from created_container(storage_connection_string, "dest")


def created_container(connection_string: str, prefix: str) -> Iterator[Destination]:
    """A new container named `<prefix>-…` as a destination, deleted after the test."""
    found = parse_destination(POLICY, connection_string=connection_string, container_name=f"{prefix}-{_tag()}")
    client = found.container_client()
    client.create_container()
    yield found
    _delete(client)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The notification receiver's self-signed certificate and key (tests/export/receiver.py)."""
    return self_signed(tmp_path_factory.mktemp("receiver"))


@pytest.fixture
def receiver(certificate: tuple[Path, Path]) -> Receiver:
    """A local HTTPS receiver of notifications signed with receiver.SECRET, on a free loopback port."""
    started = Receiver(*certificate).start()
    yield started
    started.stop()


def put(store: DicomStore, study: str, series: str, sop: str, size: int = 300) -> tuple[StoredInstance, bytes]:
    """Store random bytes as one instance (the export copies bytes; it never parses them)."""
    data = os.urandom(size)
    return store.put(study, series, sop, io.BytesIO(data), len(data)), data


def put_series(store: DicomStore, study: str, series: str, count: int, size: int = 300) -> dict[str, bytes]:
    """`count` instances `<series>.1 … <series>.<count>`; their blob names → bytes."""
    stored = {}
    for n in range(1, count + 1):
        instance, data = put(store, study, series, f"{series}.{n}", size)
        stored[instance.blob_name] = data
    return stored


def _tag() -> str:
    return uuid.uuid4().hex[:12]


def _delete(container) -> None:
    try:
        container.delete_container()
    except ResourceNotFoundError:
        pass
