"""Hosts of the app with export on, shared by the security tests: one per distinct settings, one store."""

from __future__ import annotations

import pytest

from testkit.exporting import Hosts


@pytest.fixture(scope="package")
def hosts(tmp_path_factory: pytest.TempPathFactory, storage_connection_string: str) -> Hosts:
    hosts = Hosts(tmp_path_factory.mktemp("security-hosts"), storage_connection_string)
    yield hosts
    hosts.stop()
