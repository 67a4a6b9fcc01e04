"""Operating a long export through the HTTP API: pause and resume, retry in place, cancel with a manifest, an honest
live status while the source is down, and listing pages newest first.

The source that goes down is the blob store reached through a TCP forwarder (tests/forwarder.py) that the test
stops and starts: real refused connections, not a mock.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest
import requests
from azure.storage.blob import ContainerClient

from testkit.exporting import (
    error_log,
    export_body,
    export_host,
    finished,
    host_fixtures,
    manifest,
    manifest_digest,
    manifest_of,
    new_container,
    results,
    start,
    view,
)
from testkit.host import Host, wait_for
from testkit.seed import put_study
from tests.forwarder import Forwarder

hosts, store, destination = host_fixtures("operate-hosts")


def control(host: Host, operation_id: str, action: str, version: str = "v1") -> requests.Response:
    return requests.post(f"{host.base_url}/{version}/operations/{operation_id}/{action}", timeout=60)


def listed(host: Host, **params: str) -> list[str]:
    r = requests.get(f"{host.base_url}/v1/operations", params=params, timeout=60)
    assert r.status_code == 200, r.text
    return [o["operationId"] for o in r.json()["operations"]]


def assert_exact(destination: ContainerClient, done: dict, files: int) -> None:
    """Every file once, the counts those files, the manifest listing them and recorded in the status."""
    operation_id = done["operationId"]
    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", files, 0)
    stored = results(destination, operation_id)
    assert len(stored) == files
    assert sorted(manifest(destination, operation_id)) == manifest_of(stored)
    assert done["results"].items() >= manifest_digest(destination, operation_id).items()
    assert error_log(destination, operation_id) == []


def test_pause_holds_the_counts_through_a_host_kill_and_resume_finishes_exactly(
        hosts, store, destination, storage_connection_string, tmp_path):
    study, _ = put_study(store, 120, series_count=3)
    host = export_host(tmp_path / "hub", storage_connection_string, hosts.store_container,
                       Export__BatchSize="2", Export__MaxParallelBatches="1").start()
    try:
        operation = start(host, export_body([study], destination, storage_connection_string))
        wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, timeout=60, interval=0.02,
                 message="the first files")

        assert control(host, operation["id"], "pause").status_code == 202
        paused = wait_for(lambda: (v := view(operation["href"]))["status"] == "paused" and v, timeout=60,
                          message="paused")
        assert control(host, operation["id"], "pause", "v2").status_code == 202  # idempotent
        assert operation["id"] in listed(host, status="paused")
        assert operation["id"] not in listed(host, status="running")
        time.sleep(1.5)  # a batch running at the pause finishes, but its result waits: the counts stay
        held = view(operation["href"])
        assert held["status"] == "paused" and 0 < held["results"]["exported"] < 120

        host.kill()  # paused exports stay paused across a crash
        host.start()
        assert view(operation["href"])["results"] == held["results"]
        assert view(operation["href"])["status"] == "paused" and paused["createdTime"] == held["createdTime"]

        assert control(host, operation["id"], "resume").status_code == 202
        assert control(host, operation["id"], "resume").status_code == 202  # idempotent
        done = finished(operation["href"])
        assert_exact(destination, done, 120)
        for action in ("pause", "resume"):
            refused = control(host, operation["id"], action)
            assert refused.status_code == 409 and "is completed" in refused.json()["error"], refused.text
        again = control(host, operation["id"], "retry")
        assert again.status_code == 409 and "completed" in again.json()["error"]
    finally:
        host.stop()


def forwarded(connection_string: str, forwarder: Forwarder) -> str:
    """The connection string with its blob endpoint through `forwarder`."""
    return re.sub(r"(BlobEndpoint=https?://[^:/;]+:)\d+", rf"\g<1>{forwarder.port}", connection_string)


def azurite_port(connection_string: str) -> int:
    return int(re.search(r"BlobEndpoint=https?://[^:/;]+:(\d+)", connection_string).group(1))


@pytest.fixture
def source(storage_connection_string: str, hosts):
    """The store's Azurite behind a forwarder that the test can stop: a source that goes down."""
    forwarder = Forwarder(azurite_port(storage_connection_string)).start()
    yield forwarder
    forwarder.stop()


def test_a_source_that_is_down_shows_retrying_with_the_reason_and_when_it_tries_next(
        hosts, store, destination, storage_connection_string, source, tmp_path):
    study, _ = put_study(store, 6)
    host = export_host(tmp_path / "hub", storage_connection_string, hosts.store_container,
                       DicomStore__ConnectionString=forwarded(storage_connection_string, source),
                       Export__RetryOptions__MaxNumberOfAttempts="4",
                       Export__RetryOptions__FirstRetryIntervalSeconds="4").start()
    try:
        source.stop()
        operation = start(host, export_body([study], destination, storage_connection_string))
        seen = wait_for(lambda: (v := view(operation["href"])).get("retrying") and v, timeout=60,
                        message="the retry shown")
        retry = seen["retrying"]
        assert seen["status"] == "running" and retry["attempt"] >= 2 and retry["maxAttempts"] == 4
        assert "reading the DICOM store failed" in retry["reason"]
        assert "AccountKey" not in str(seen) and "Eby8vdM02xNOcqF" not in str(seen)
        assert datetime.fromisoformat(retry["nextAttemptTime"]) >= datetime.fromisoformat(retry["since"])
        source.start()
        done = finished(operation["href"])
        assert done["status"] == "completed" and "retrying" not in done
        assert done["results"]["exported"] == 6
    finally:
        host.stop()


def test_a_failed_export_retried_in_place_finishes_exactly_even_when_the_host_dies_during_the_retry(
        hosts, store, destination, storage_connection_string, source, tmp_path):
    study, _ = put_study(store, 120, series_count=3)
    host = export_host(tmp_path / "hub", storage_connection_string, hosts.store_container,
                       DicomStore__ConnectionString=forwarded(storage_connection_string, source),
                       Export__BatchSize="2", Export__MaxParallelBatches="2").start()
    try:
        operation = start(host, export_body([study], destination, storage_connection_string))
        wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, timeout=60, interval=0.02,
                 message="the first files")
        source.stop()
        failed = finished(operation["href"])
        assert failed["status"] == "failed" and "reading the DICOM store failed" in failed["errors"][0]
        # What the completed generations wrote is committed and recorded, so it can be verified.
        lines = manifest(destination, operation["id"])
        assert len(lines) == failed["results"]["exported"] > 0
        assert failed["results"].items() >= manifest_digest(destination, operation["id"]).items()
        source.start()

        retried = control(host, operation["id"], "retry", "v2")
        assert retried.status_code == 202 and retried.json()["id"] == operation["id"]
        wait_for(lambda: view(operation["href"])["results"]["exported"] > failed["results"]["exported"],
                 timeout=60, interval=0.02, message="the retry's progress")
        host.kill()
        host.start()
        done = finished(operation["href"])
        assert done["createdTime"] == failed["createdTime"]
        assert_exact(destination, done, 120)
    finally:
        host.stop()


def test_a_retry_in_place_over_skipped_instances_leaves_each_skip_line_once(
        hosts, store, destination, storage_connection_string, tmp_path):
    study, _ = put_study(store, 120, series_count=3)  # random bytes: de-identification skips every one, with a line
    host = export_host(tmp_path / "hub", storage_connection_string, hosts.store_container,
                       Export__BatchSize="2", Export__MaxParallelBatches="4").start()
    try:
        body = {**export_body([study, f"{study}.9"], destination, storage_connection_string),  # .9: no such series
                "deidentification": {"profile": "basic"}}
        operation = start(host, body)
        wait_for(lambda: view(operation["href"])["results"]["skipped"] > 8, timeout=60, interval=0.02,
                 message="the first skips")
        # Canceled mid-generation: its running batches finish and write their lines, and the retry runs that
        # generation again from its checkpoint, those batches included.
        assert control(host, operation["id"], "cancel").status_code == 202
        assert finished(operation["href"])["status"] == "canceled"
        assert control(host, operation["id"], "retry").status_code == 202
        wait_for(lambda: view(operation["href"])["status"] == "running", timeout=60, interval=0.02,
                 message="the retry")
        host.kill()  # and a crash during the retry: batches run again replace their own lines too
        host.start()
        done = finished(operation["href"])
        assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", 0, 121)
        lines = [line["identifier"] for line in error_log(destination, operation["id"])]
        assert len(lines) == len(set(lines)) == 121  # each skipped instance, and the series, once
    finally:
        host.stop()


def test_listing_pages_are_newest_first_on_every_page(hosts, destination, storage_connection_string):
    host = hosts()
    body = export_body(["2.25.1"], destination, storage_connection_string)
    for _ in range(5):
        start(host, body)
    everything = listed(host)
    paged, token = [], None
    while True:
        r = requests.get(f"{host.base_url}/v1/operations",
                         params={"top": "2", **({"continuationToken": token} if token else {})}, timeout=60)
        assert r.status_code == 200, r.text
        page = r.json()
        created = [o["createdTime"] for o in page["operations"]]
        assert created == sorted(created, reverse=True)
        paged += [o["operationId"] for o in page["operations"]]
        token = page.get("continuationToken")
        if not token:
            break
    assert paged == everything  # the pages, one after another, are the whole list in its order
    assert len(paged) >= 5


def test_the_status_gives_the_total_once_it_is_known_and_the_counts_end_at_it(
        hosts, store, destination, storage_connection_string):
    host = hosts()  # batches of 5, 2 per generation: 40 instances take 4 generations
    study, stored = put_study(store, 40, series_count=2)
    operation = start(host, export_body([study], destination, storage_connection_string))
    views = [view(operation["href"])]
    while views[-1]["status"] not in ("completed", "failed"):
        views.append(view(operation["href"]))
    assert "total" not in views[0]["results"]  # a study's size is known only once its listing is done
    assert {v["results"].get("total") for v in views} <= {None, 40}
    # The look-ahead lists the last generation while the one before copies: the total shows before the end.
    assert any(v["status"] == "running" and v["results"].get("total") == 40 for v in views)
    assert (views[-1]["status"], views[-1]["results"]["exported"], views[-1]["results"]["total"]) == ("completed", 40, 40)

    instances = [name[: -len(".dcm")] for name in list(stored)[:3]] + [f"{study}/1.2/1.3"]  # the last is missing
    operation = start(host, export_body(instances, new_container(storage_connection_string), storage_connection_string))
    assert view(operation["href"])["results"]["total"] == 4  # instances: known from the start
    done = finished(operation["href"])
    assert (done["results"]["exported"], done["results"]["skipped"], done["results"]["total"]) == (3, 1, 4)
