"""Running exports end to end from tests and benchmarks: a host with export settings, a seeded store,
a request, polling until the operation ends, and what landed in the destination.

Everything goes through real HTTP to a `python -m devhost` process and through Azurite; nothing here
knows how the export works inside. Settings keep exports small and quick (tiny files, small batches,
short retry intervals); the behaviour is the one deployed with the defaults.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import ContainerClient
from cryptography.fernet import Fernet

from shared.stores.blob.store import DicomStore
from tests.hosting import ROOT, Host, wait_for

FLAG = "DicomServer__Features__EnableExtendedExport"
EXPORT_SETTINGS = {
    FLAG: "true",
    "Export__AllowEmulator": "true",
    "Export__BatchSize": "5",
    "Export__MaxParallelBatches": "2",
    "Export__MaxParallelThreads": "3",
    "Export__RetryOptions__MaxNumberOfAttempts": "2",
    "Export__RetryOptions__FirstRetryIntervalSeconds": "0.2",
    "Export__RetryOptions__BackoffCoefficient": "1",
}
TERMINAL = ("completed", "succeeded", "failed", "canceled")
WEBHOOK = "/runtime/webhooks/durabletask"


def export_env(connection_string: str, store_container: str, **overrides: str) -> dict[str, str]:
    """App settings for a host that exports from `store_container`, with its own secret key."""
    return {**EXPORT_SETTINGS, "AzureWebJobsStorage": connection_string, "DicomStore__ContainerName": store_container,
            "Export__SecretKey": Fernet.generate_key().decode(), **overrides}


def export_host(data_dir: Path, connection_string: str, store_container: str, port: int = 0,
                **overrides: str) -> Host:
    """A host of this app (not yet started) with export settings; restart it with the same data_dir and port."""
    return Host(ROOT, data_dir, env=export_env(connection_string, store_container, **overrides), port=port)


class Hosts:
    """Hosts started on demand, one per distinct settings, all exporting from one store on one Azurite."""

    def __init__(self, root: Path, connection_string: str):
        self.root, self.connection_string, self.started = root, connection_string, {}
        self.store_container = f"store-{uuid.uuid4().hex[:10]}"

    def __call__(self, **overrides: str) -> Host:
        key = json.dumps(overrides, sort_keys=True)
        if key not in self.started:
            data = self.root / f"hub{len(self.started)}"
            self.started[key] = export_host(data, self.connection_string, self.store_container, **overrides).start()
        return self.started[key]

    def stop(self) -> None:
        for host in self.started.values():
            host.stop()


def host_fixtures(folder: str) -> tuple[Any, Any, Any]:
    """A test module's fixtures for exporting through hosts: `hosts` (under a temporary `folder`), the `store`
    they export from, and a new `destination` container for each test.

        hosts, store, destination = host_fixtures("export-hosts")
    """
    @pytest.fixture(scope="module")
    def hosts(tmp_path_factory: pytest.TempPathFactory, storage_connection_string: str):
        started = Hosts(tmp_path_factory.mktemp(folder), storage_connection_string)
        yield started
        started.stop()

    @pytest.fixture(scope="module")
    def store(hosts: Hosts) -> DicomStore:
        return open_store(hosts.connection_string, hosts.store_container)

    @pytest.fixture
    def destination(storage_connection_string: str) -> ContainerClient:
        return new_container(storage_connection_string)

    return hosts, store, destination


def open_store(connection_string: str, container: str) -> DicomStore:
    store = DicomStore.from_settings({"AzureWebJobsStorage": connection_string, "DicomStore__ContainerName": container})
    store.ensure_container()
    return store


def uid() -> str:
    """A fresh study UID, so tests sharing a store never see each other's instances."""
    return f"2.25.{uuid.uuid4().int}"[:60]


def put_study(store: DicomStore, count: int, series_count: int = 1, size: int = 64,
              study: str | None = None) -> tuple[str, dict[str, bytes]]:
    """A study of `count` random-byte instances over `series_count` series; its blob names → bytes.

    The export copies bytes and never parses them, so random bytes make every file distinct.
    """
    study = study or uid()
    stored = {}

    def put(n: int) -> None:
        series = f"{study}.{n % series_count + 1}"
        data = os.urandom(size)
        instance = store.put(study, series, f"{series}.{n + 1}", io.BytesIO(data), len(data))
        stored[instance.blob_name] = data

    with ThreadPoolExecutor(max_workers=10) as pool:  # the client's connection pool size
        list(pool.map(put, range(count)))
    return study, stored


def new_container(connection_string: str, name: str | None = None) -> ContainerClient:
    client = ContainerClient.from_connection_string(connection_string, name or f"dest-{uuid.uuid4().hex[:10]}")
    client.create_container()
    return client


def export_body(values: list[str], destination: ContainerClient | None = None, conn: str | None = None,
                source_key: str = "source", **settings: object) -> dict:
    """An export request; the destination is `conn` + `destination`'s name, or the given `settings`."""
    if destination is not None and conn is not None:
        settings = {"connectionString": conn, "blobContainerName": destination.container_name, **settings}
    return {source_key: {"type": "identifiers", "settings": {"values": values}},
            "destination": {"type": "azureblob", "settings": settings}}


def start(host: Host, body: dict, route: str = "export", **headers: str) -> dict:
    """POST the export; its 202 body {"id", "href"}."""
    r = requests.post(f"{host.base_url}/{route}", json=body, headers=headers, timeout=60)
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == r.json()["href"]
    return r.json()


def view(href: str, **headers: str) -> dict:
    """The operation as the client sees it; 202 while running, 200 once terminal."""
    r = requests.get(href, headers=headers, timeout=30)
    assert r.status_code in (200, 202), r.text
    assert (r.status_code == 200) == (r.json()["status"] in TERMINAL)
    return r.json()


def finished(href: str, timeout: float = 120, **headers: str) -> dict:
    return wait_for(lambda: (v := view(href, **headers))["status"] in TERMINAL and v,
                    timeout=timeout, interval=0.05, message=f"{href} to finish")


def results(destination: ContainerClient, operation_id: str) -> dict[str, bytes]:
    """The exported files of one operation: path under `<id>/results/` → bytes."""
    prefix = f"{operation_id}/results/"
    return {b.name[len(prefix):]: destination.download_blob(b.name).readall()
            for b in destination.list_blobs(name_starts_with=prefix)}


def manifest(destination: ContainerClient, operation_id: str) -> list[tuple[str, str]]:
    """The lines of `<id>/manifest-sha256.txt` as (path under `results/`, sha256 hex), in order."""
    text = destination.download_blob(f"{operation_id}/manifest-sha256.txt").readall().decode()
    lines = [line.split("  ", 1) for line in text.splitlines()]
    assert all(len(digest) == 64 and path.startswith("results/") for digest, path in lines), text[:500]
    return [(path.removeprefix("results/"), digest) for digest, path in lines]


def manifest_of(stored: Mapping[str, bytes]) -> list[tuple[str, str]]:
    """What the manifest of an export of `stored` lists, sorted: every file once, with its SHA-256."""
    return sorted((name, hashlib.sha256(data).hexdigest()) for name, data in stored.items())


def error_log(destination: ContainerClient, operation_id: str) -> list[dict]:
    text = destination.download_blob(f"{operation_id}/errors.log").readall().decode()
    return [json.loads(line) for line in text.splitlines()]


def durable(host: Host, operation_id: str, headers: Mapping[str, str] | None = None, **params: str) -> dict:
    """The durable status of an instance through the host's webhook."""
    r = requests.get(f"{host.base_url}{WEBHOOK}/instances/{operation_id}", params=params, headers=headers,
                     timeout=30)
    assert r.status_code in (200, 202), r.text
    return r.json()


def instance_ids(host: Host, headers: Mapping[str, str] | None = None) -> set[str]:
    """Every orchestration instance the task hub holds, through the durable webhook (all pages)."""
    found, token = set(), None
    while True:
        r = requests.get(f"{host.base_url}{WEBHOOK}/instances", params={"showInput": "false"},
                         headers={**(headers or {}), **({"x-ms-continuation-token": token} if token else {})},
                         timeout=30)
        assert r.status_code == 200, r.text
        found |= {i["instanceId"] for i in r.json()}
        token = r.headers.get("x-ms-continuation-token")
        if not token:
            return found
