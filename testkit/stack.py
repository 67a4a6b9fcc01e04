"""Azurite and hosts of the app in one temporary folder, for the benchmarks.

Every benchmark starts its own Azurite (free port, data in a temporary folder) and one local host on the
real app (`function_app.py`); the store is the container `STORE_CONTAINER` of that Azurite.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.storage.blob import ContainerClient
from cryptography.fernet import Fernet

from devhost.azurite import Azurite, free_port
from shared.connection_pool import pooled_session
from testkit.host import ROOT, Host

STORE_CONTAINER = "dicomweb"
# The export's settings the benchmarks share: the published defaults, with quick retries so a hiccup of
# the emulator costs seconds, not minutes.
BASE_SETTINGS = {
    "DicomServer__Features__EnableExtendedExport": "true",
    "Export__AllowEmulator": "true",
    "Export__RetryOptions__FirstRetryIntervalSeconds": "1",
    "Export__Deidentification__Key": "bench key",  # de-identified runs need no key file in the worktree
}


@dataclass
class Stack:
    """One Azurite and a local host on the app, sharing a temporary folder.

    With `before` (a git ref), a second host runs the app and devhost as they were at that commit (an
    archive of it), on the same Azurite and store: a change is measured against its predecessor in one run.
    """

    folder: Path
    settings: dict[str, str] = field(default_factory=dict)
    before: str | None = None
    azurite: Azurite | None = None
    host: Host | None = None
    host_before: Host | None = None
    _hosts: list[Host] = field(default_factory=list)

    @property
    def connection_string(self) -> str:
        assert self.azurite is not None
        return self.azurite.connection_string

    @property
    def hub_dir(self) -> Path:
        return self.folder / "hub"

    def start(self) -> Stack:
        self.azurite = Azurite(
            self.folder / "azurite", free_port(), log_path=self.folder / "azurite.log"
        ).start()
        self.host = self.add_host()
        if self.before:
            self.host_before = self.add_host(
                app=checkout(self.before, self.folder / "before"), name="hub-before"
            )
        return self

    def add_host(self, settings: dict[str, str] | None = None, app: Path = ROOT, name: str = "hub") -> Host:
        """Another host on this Azurite and store, with its own task hub `name` and `settings` on top."""
        env = {
            **BASE_SETTINGS,
            **self.settings,
            **(settings or {}),
            "AzureWebJobsStorage": self.connection_string,
            "DicomStore__ContainerName": STORE_CONTAINER,
            "Export__SecretKey": Fernet.generate_key().decode(),
        }
        host = Host(app, self.folder / name, env=env, cwd=app).start()
        self._hosts.append(host)
        return host

    def stop(self) -> None:
        for host in self._hosts:
            host.stop()
        if self.azurite:
            self.azurite.stop()

    def container(self, name: str, pool: int = 64) -> ContainerClient:
        """A client of container `name` (created if missing) keeping up to `pool` connections."""
        return container_client(self.connection_string, name, pool)

    def store(self, pool: int = 64) -> ContainerClient:
        return self.container(STORE_CONTAINER, pool)


def container_client(connection_string: str, name: str, pool: int = 64, **options: Any) -> ContainerClient:
    """A client of container `name` (created if missing) keeping up to `pool` connections; `options` go to
    the client (transfer sizes)."""
    client = ContainerClient.from_connection_string(
        connection_string, name, session=pooled_session(pool), **options
    )
    if not client.exists():
        client.create_container()
    return client


def checkout(ref: str, folder: Path) -> Path:
    """The project's files at git `ref`, extracted into `folder` (the repository is left untouched)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


@contextmanager
def stack(
    settings: dict[str, str] | None = None, before: str | None = None, keep: bool = False
) -> Iterator[Stack]:
    """A started Stack, stopped (and its folder removed unless `keep`) on exit."""
    folder = Path(tempfile.mkdtemp(prefix="dicom-bench-"))
    running = Stack(folder, dict(settings or {}), before)
    try:
        yield running.start()
    finally:
        running.stop()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
