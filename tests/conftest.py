"""Shared fixtures: one Azurite per session (the one `make test` started, or our own); markers by what a test starts.

A test is marked `host` when it uses a fixture that starts the local host or its module holds what starts one
(testkit's Host, export_host, Hosts, host_fixtures, killed_export), and `orthanc` likewise for Orthanc: `make test-fast`
deselects both. Under it (TESTKIT_NO_SERVERS set) testkit refuses to start either, so a test this misses
fails and says so instead of slowing the fast run down.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devhost.azurite import Azurite, free_port
from testkit.crashes import killed_export
from testkit.exporting import Hosts, export_host, host_fixtures
from testkit.host import Host, hermetic_environ
from testkit.orthanc import Orthanc


def pytest_configure(config: pytest.Config) -> None:
    """Tests never see the developer's own settings: what they need, they set themselves."""
    for name in set(os.environ) - set(hermetic_environ(os.environ)):
        del os.environ[name]

# What a test starts, known from the fixtures it uses or from what its module holds.
STARTS = {
    "host": ({"host", "hosts"}, (Host, export_host, Hosts, host_fixtures, killed_export)),
    "orthanc": ({"orthanc"}, (Orthanc,)),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        held = list(vars(module).values()) if module else []
        for marker, (fixtures, starters) in STARTS.items():
            if fixtures & set(getattr(item, "fixturenames", ())) or any(
                any(value is s for s in starters) for value in held
            ):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def storage_connection_string(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Connection string of a running Azurite blob service."""
    existing = os.environ.get("AZURITE_CONNECTION_STRING")
    if existing:
        yield existing
        return
    data = tmp_path_factory.mktemp("azurite")
    azurite = Azurite(Path(data) / "data", free_port(), log_path=Path(data) / "azurite.log").start()
    try:
        yield azurite.connection_string
    finally:
        azurite.stop()
