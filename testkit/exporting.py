"""Running exports end to end from tests and benchmarks: a host with export settings, a seeded store,
a request, polling until the operation ends, and what landed in the destination.

Everything goes through real HTTP to a `python -m devhost` process and through Azurite; nothing here
knows how the export works inside. Settings keep exports small and quick (tiny files, small batches,
short retry intervals); the behaviour is the one deployed with the defaults.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from azure.storage.blob import ContainerClient
from cryptography.fernet import Fernet

from cli.api import Api, is_terminal
from shared.stores.blob.store import DicomStore
from testkit.host import ROOT, Host, wait_for
from testkit.seed import open_store

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
        self.root, self.connection_string = root, connection_string
        self.started: dict[str, Host] = {}
        self.store_container = f"store-{uuid.uuid4().hex[:10]}"

    def __call__(self, **overrides: str) -> Host:
        key = json.dumps(overrides, sort_keys=True)
        if key not in self.started:
            data = self.root / f"hub{len(self.started)}"
            env = export_env(self.connection_string, self.store_container, **overrides)
            self.started[key] = Host(ROOT, data, env=env).start()
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


def client(url: str, **headers: str) -> Api:
    """The one export client (cli.api) on the service at `url`, sending `headers` with every request."""
    api = Api(url.rstrip("/"))
    api.session.headers.update(headers)
    return api


def start(host: Host, body: dict, route: str = "export", **headers: str) -> dict:
    """POST the export; its 202 body {"id", "href"}."""
    r = client(host.base_url, **headers).request("POST", f"/{route}", ok=(202,), json=body)
    assert r.headers["Location"] == r.json()["href"]
    return r.json()


def view(href: str, **headers: str) -> dict:
    """The operation as the client sees it; 202 while running, 200 once terminal."""
    url = urlsplit(href)
    r = client(f"{url.scheme}://{url.netloc}", **headers).request("GET", href.split(url.netloc, 1)[1])
    assert (r.status_code == 200) == is_terminal(r.json())
    return r.json()


def finished(href: str, timeout: float = 120, **headers: str) -> dict:
    return wait_for(lambda: is_terminal(v := view(href, **headers)) and v,
                    timeout=timeout, interval=0.05, message=f"{href} to finish")


def results(destination: ContainerClient, operation_id: str) -> dict[str, bytes]:
    """The exported files of one operation: path under `<id>/results/` → bytes."""
    prefix = f"{operation_id}/results/"
    return {b.name[len(prefix):]: destination.download_blob(b.name).readall()
            for b in destination.list_blobs(name_starts_with=prefix)}


def manifest_digest(destination: ContainerClient, operation_id: str) -> dict[str, Any]:
    """The manifest's SHA-256 and size as they are in the container, as the operation's results record them."""
    data = destination.download_blob(f"{operation_id}/manifest-sha256.txt").readall()
    return {"manifestSha256": hashlib.sha256(data).hexdigest(), "manifestSize": len(data)}


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
