"""Shared fixtures: one Azurite per session (the one `make test` started, or our own)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devhost.azurite import Azurite, free_port
from tests.hosting import hermetic_environ


def pytest_configure(config: pytest.Config) -> None:
    """Tests never see the developer's own settings: what they need, they set themselves."""
    for name in set(os.environ) - set(hermetic_environ(os.environ)):
        del os.environ[name]


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
