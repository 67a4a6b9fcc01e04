"""Storage goes away mid-export: a short outage is ridden out by the activities' retries; one longer
than the retry budget fails the operation with a clear reason. The host answers status throughout.

A host killed during a retry's wait resumes it after the restart. Each test runs its own Azurite (store and destination both live there), stopped and started again
on the same data and port, so the rest of the suite keeps its storage.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
import requests

from devhost.azurite import Azurite, free_port
from testkit.crashes import kill_at
from testkit.exporting import (
    durable,
    error_log,
    export_body,
    export_host,
    finished,
    manifest,
    manifest_of,
    new_container,
    results,
    start,
    view,
)
from testkit.host import Host, wait_for
from testkit.seed import open_store, put_study

INSTANCES = 300
SHORT_OUTAGE = 10.0  # seconds


@pytest.fixture
def azurite(tmp_path: Path) -> Azurite:
    azurite = Azurite(tmp_path / "azurite", free_port(), log_path=tmp_path / "azurite.log").start()
    yield azurite
    azurite.stop()


def outage(host: Host, operation: dict, until) -> list[float]:
    """Poll status (operation route, durable webhook, host status) until `until()`; each answer's seconds."""
    timings = []
    while not until():
        for url in (operation["href"], f"{host.base_url}/runtime/webhooks/durabletask/instances/{operation['id']}",
                    f"{host.base_url}/admin/host/status"):
            began = time.monotonic()
            r = requests.get(url, timeout=5)
            timings.append(time.monotonic() - began)
            assert r.status_code in (200, 202), (url, r.status_code, r.text)
        time.sleep(0.25)
    return timings


def export_until_storage_stops(tmp_path: Path, azurite: Azurite, **retry: str):
    """A host exporting INSTANCES; once 60 files are out, storage stops. (host, operation, files, destination)."""
    conn, store_container = azurite.connection_string, f"store-{uuid.uuid4().hex[:10]}"
    study, stored = put_study(open_store(conn, store_container), INSTANCES, series_count=3, size=32)
    destination = new_container(conn)
    host = export_host(tmp_path / "hub", conn, store_container, Export__BatchSize="10",
                       Export__MaxParallelBatches="3", **retry).start()
    try:
        operation = start(host, export_body([study], destination, conn))
        wait_for(lambda: view(operation["href"])["results"]["exported"] >= 60, message="the first files")
    except BaseException:
        host.stop()
        raise
    azurite.stop()
    return host, operation, stored, destination


def test_a_ten_second_storage_outage_mid_export_is_ridden_out(tmp_path: Path, azurite: Azurite) -> None:
    # Retry budget: waits of 1, 2, 4, 8 and 16 s between six attempts: more than the outage.
    host, operation, stored, destination = export_until_storage_stops(
        tmp_path, azurite, Export__RetryOptions__MaxNumberOfAttempts="6",
        Export__RetryOptions__FirstRetryIntervalSeconds="1", Export__RetryOptions__BackoffCoefficient="2")
    stopped = time.monotonic()
    try:
        timings = outage(host, operation, until=lambda: time.monotonic() - stopped >= SHORT_OUTAGE)
        during = view(operation["href"])
        azurite.start()
        done = finished(operation["href"], timeout=120)
    finally:
        host.stop()

    assert during["status"] == "running" and during["results"]["exported"] < INSTANCES
    assert max(timings) < 2, "status answered slowly while storage was down"
    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", INSTANCES, 0)
    assert results(destination, operation["id"]) == stored
    assert sorted(manifest(destination, operation["id"])) == manifest_of(stored)  # retried batches listed once
    assert error_log(destination, operation["id"]) == []
    assert "(Failed, InstanceId=" in host.log(), "no activity failed: the outage was not felt"


def test_an_outage_longer_than_the_retry_budget_fails_the_operation_with_the_reason(
        tmp_path: Path, azurite: Azurite) -> None:
    # Retry budget: two attempts half a second apart.
    host, operation, _, _ = export_until_storage_stops(tmp_path, azurite,
                                                       Export__RetryOptions__MaxNumberOfAttempts="2",
                                                       Export__RetryOptions__FirstRetryIntervalSeconds="0.5")
    stopped = time.monotonic()
    try:
        outage(host, operation, until=lambda: view(operation["href"])["status"] != "running"
               or time.monotonic() - stopped > 60)
        failed_after = time.monotonic() - stopped
        done = view(operation["href"])
        hub = durable(host, operation["id"])
    finally:
        host.stop()
        azurite.start()

    assert done["status"] == "failed", f"still {done['status']} {failed_after:.0f} s into the outage"
    assert hub["runtimeStatus"] == "Failed"
    [reason] = done["errors"]  # names the side that failed, and why
    assert re.match(r"reading the DICOM store failed: .*Connection refused|storage account 'devstoreaccount1' "
                    r"is unreachable", reason), reason
    assert done["results"]["exported"] < INSTANCES


def test_a_host_killed_while_a_retry_waits_resumes_the_wait_and_exports_every_file_once(
        tmp_path: Path, azurite: Azurite) -> None:
    # The orchestrator's own retry timer (2 s, then 4, 8, ...) survives the host: the restart replays the
    # history to the same timer, and the export ends with exact counts and a manifest listing each file once.
    host, operation, stored, destination = export_until_storage_stops(
        tmp_path, azurite, Export__RetryOptions__MaxNumberOfAttempts="8",
        Export__RetryOptions__FirstRetryIntervalSeconds="2", Export__RetryOptions__BackoffCoefficient="2")
    try:
        kill_at(host, operation["id"], "retry-wait", timeout=90)
        azurite.start()
        host.start()
        done = finished(operation["href"], timeout=180)
    finally:
        host.stop()

    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", INSTANCES, 0)
    assert results(destination, operation["id"]) == stored
    assert sorted(manifest(destination, operation["id"])) == manifest_of(stored)
    assert error_log(destination, operation["id"]) == []
    assert host.log().count("Host started at") == 2
