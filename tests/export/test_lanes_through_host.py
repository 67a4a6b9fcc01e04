"""An export run as lanes (Export__Lanes=3) through the local host: still one operation, exactly.

Each source kind is cut its own way (identifiers and queries by position, a whole store by study key ranges); every
case checks the exact counts, one manifest listing every file once, errors.log, and that the lanes ran as
orchestrations of their own (`<id>-lane<n>`) that the operation's status and listing never show as operations.
"""

from __future__ import annotations

import uuid

import requests

from shared.export.lanes import lane_id
from shared.export.operation import durable_json
from testkit.exporting import (
    durable,
    error_log,
    export_body,
    export_host,
    finished,
    host_fixtures,
    manifest,
    manifest_digest,
    manifest_of,
    results,
    start,
    view,
)
from testkit.host import wait_for
from testkit.seed import open_store, put_study, uid
from tests.export.receiver import SECRET
from tests.export.test_notification import notified, trusting
from tests.export.test_operate import forwarded, source  # noqa: F401 - the store behind a forwarder a test stops
from tests.export.test_query_through_host import archive  # noqa: F401 - the query corpus, stowed through the host
from tests.query import corpus

hosts, store, destination = host_fixtures("lanes-hosts")
LANES = {"Export__Lanes": "3"}


def lanes_of(host, operation_id: str) -> list[dict]:
    """The durable statuses of the operation's three lanes, with their inputs and outputs as JSON."""
    found = [durable(host, lane_id(operation_id, n), showInput="true") for n in range(3)]
    return [{**lane, "input": durable_json(lane["input"]), "output": durable_json(lane.get("output"))} for lane in found]


def assert_exactly(destination, operation_id: str, expected: dict[str, bytes]) -> None:
    """Exactly `expected` was exported, and the one manifest lists each file once."""
    assert results(destination, operation_id) == expected
    lines = manifest(destination, operation_id)
    assert sorted(lines) == manifest_of(expected) and len({name for name, _ in lines}) == len(lines)


def test_identifiers_run_as_three_lanes_with_exact_counts_one_manifest_and_the_unknown_ones_logged(
        hosts, store, destination, storage_connection_string):
    host = hosts(**LANES)
    stored: dict[str, bytes] = {}
    studies = []
    for count in (7, 3, 12, 5):
        study, files = put_study(store, count, series_count=2)
        studies.append(study)
        stored.update(files)
    neighbour, _ = put_study(store, 1)  # stored, not exported: only an unknown series of it is asked for
    unknown = [uid(), f"{neighbour}/{uid()}"]
    values = [studies[0], unknown[0], *studies[1:], unknown[1]]

    operation = start(host, export_body(values, destination, storage_connection_string))
    done = finished(operation["href"])

    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", 27, 2)
    assert_exactly(destination, operation["id"], stored)
    assert sorted(e["identifier"] for e in error_log(destination, operation["id"])) == sorted(unknown)
    lanes = lanes_of(host, operation["id"])
    assert [lane["runtimeStatus"] for lane in lanes] == ["Completed"] * 3
    assert [lane["output"]["exported"] for lane in lanes] == [7, 15, 5]  # by position: 2, 2 and 2 of the 6 values
    listed = requests.get(f"{host.base_url}/v1/operations", timeout=30).json()["operations"]
    assert not any("-lane" in o["operationId"] for o in listed)
    assert requests.get(f"{host.base_url}/v1/operations/{lane_id(operation['id'], 0)}", timeout=30).status_code == 400


def test_queries_run_as_lanes_and_still_take_each_instance_once(hosts, archive, destination,  # noqa: F811
                                                                 storage_connection_string):
    files, uids = archive
    operation = start(hosts(**LANES), corpus.export_body(corpus.EXPORTED, destination, storage_connection_string))
    corpus.check_exported(finished(operation["href"]), destination, operation["id"], files, uids, dropped=0)
    assert error_log(destination, operation["id"]) == []


def test_a_whole_store_runs_as_study_key_ranges_that_cover_it_once(hosts, destination, storage_connection_string):
    container = f"whole-{uuid.uuid4().hex[:10]}"
    host = hosts(DicomStore__ContainerName=container, **LANES)
    stored: dict[str, bytes] = {}
    for count in (4, 6, 2, 5, 3, 4):
        stored.update(put_study(open_store(storage_connection_string, container), count, series_count=2)[1])
    body = export_body(["1.2"], destination, storage_connection_string)
    del body["source"]

    operation = start(host, body)
    done = finished(operation["href"])

    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", 24, 0)
    assert_exactly(destination, operation["id"], stored)
    assert error_log(destination, operation["id"]) == []
    lanes = lanes_of(host, operation["id"])
    assert all(0 < lane["output"]["exported"] < 24 for lane in lanes)  # each lane copied a part of the store


def test_pause_and_cancel_reach_every_lane_and_the_manifest_lists_what_the_counts_count(
        hosts, store, destination, storage_connection_string):
    host = hosts(Export__BatchSize="2", Export__MaxParallelBatches="1", **LANES)
    studies = [put_study(store, 40, series_count=2)[0] for _ in range(3)]
    operation = start(host, export_body(studies, destination, storage_connection_string), route="v2/export")
    wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, timeout=60, interval=0.02,
             message="the first files")

    assert requests.post(f"{operation['href']}/pause", timeout=30).status_code == 202
    wait_for(lambda: [lane["runtimeStatus"] for lane in lanes_of(host, operation["id"])] == ["Suspended"] * 3,
             timeout=60, message="every lane suspended")
    paused = view(operation["href"])
    assert paused["status"] == "paused"
    assert requests.post(f"{operation['href']}/resume", timeout=30).status_code == 202
    wait_for(lambda: view(operation["href"])["results"]["exported"] > paused["results"]["exported"], timeout=60,
             interval=0.05, message="the lanes moving again")

    assert requests.post(f"{operation['href']}/cancel", timeout=30).status_code == 202
    done = finished(operation["href"])
    assert done["status"] == "canceled" and 0 < done["results"]["exported"] < 120
    assert {lane["runtimeStatus"] for lane in lanes_of(host, operation["id"])} <= {"Terminated", "Completed"}
    lines = manifest(destination, operation["id"])
    assert len(lines) == done["results"]["exported"] == len({name for name, _ in lines})
    assert {name for name, _ in lines} <= set(results(destination, operation["id"]))
    assert view(operation["href"])["results"] == done["results"]  # nothing moves after the cancel

    assert requests.post(f"{operation['href']}/retry", timeout=30).status_code == 202
    retried = finished(operation["href"])
    assert (retried["status"], retried["results"]["exported"]) == ("succeeded", 120)
    assert sorted(manifest(destination, operation["id"])) == manifest_of(results(destination, operation["id"]))


def test_lanes_that_fail_fail_the_export_after_committing_what_they_counted_and_a_retry_finishes_it(
        hosts, store, destination, storage_connection_string, source, tmp_path):  # noqa: F811
    studies = [put_study(store, 40, series_count=2)[0] for _ in range(3)]
    host = export_host(tmp_path / "hub", storage_connection_string, hosts.store_container,
                       DicomStore__ConnectionString=forwarded(storage_connection_string, source),
                       Export__BatchSize="2", Export__MaxParallelBatches="1", Export__RetryOptions__MaxNumberOfAttempts="3",
                       Export__RetryOptions__FirstRetryIntervalSeconds="2", **LANES).start()
    try:
        operation = start(host, export_body(studies, destination, storage_connection_string))
        wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, timeout=60, interval=0.02,
                 message="the first files")
        source.stop()
        seen = wait_for(lambda: (v := view(operation["href"])).get("retrying") and v, timeout=60,
                        message="a lane's retry shown in the operation's status")
        assert seen["status"] == "running" and "reading the DICOM store failed" in seen["retrying"]["reason"]
        failed = finished(operation["href"])
        assert failed["status"] == "failed" and "reading the DICOM store failed" in failed["errors"][0]
        lines = manifest(destination, operation["id"])
        assert len(lines) == failed["results"]["exported"] == len({name for name, _ in lines}) > 0
        assert failed["results"].items() >= manifest_digest(destination, operation["id"]).items()
        source.start()

        assert requests.post(f"{operation['href']}/retry".replace("/v1/", "/v2/"), timeout=30).status_code == 202
        done = finished(operation["href"])
        assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", 120, 0)
        assert sorted(manifest(destination, operation["id"])) == manifest_of(results(destination, operation["id"]))
    finally:
        host.stop()


def test_an_export_run_as_lanes_notifies_once_with_the_lanes_counts_when_canceled_and_again_when_retried(
        hosts, store, destination, certificate, receiver):
    host = trusting(hosts, certificate, **LANES)
    studies = [put_study(store, 30)[0] for _ in range(3)]
    body = export_body(studies, destination, hosts.connection_string)
    body["notification"] = {"url": receiver.url, "secret": SECRET}
    operation = start(host, body)
    wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, timeout=60, interval=0.02,
             message="the first files")
    assert requests.post(f"{host.base_url}/v1/operations/{operation['id']}/cancel", timeout=60).status_code == 202

    final = notified(operation["href"])
    assert final["status"] == "canceled" and final["results"]["exported"] > 0
    assert [(d.signed, d.status["status"]) for d in receiver.deliveries] == [(True, "canceled")]
    assert receiver.deliveries[0].status["results"] == final["results"]  # the lanes' counts, summed

    assert requests.post(f"{host.base_url}/v1/operations/{operation['id']}/retry", timeout=60).status_code == 202
    wait_for(lambda: len(receiver.deliveries) == 2, timeout=180, message="the retried export's notification")
    assert receiver.deliveries[1].status["status"] == "completed"
    assert receiver.deliveries[1].status["results"]["exported"] == 90
