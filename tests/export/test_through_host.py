"""The export end to end: real HTTP to the local host, real orchestrations, Azurite for both store and destination.

Settings keep each export small and quick (tiny files, small batches, short retry intervals; see
testkit/exporting.py); the behaviour is the one deployed with the defaults.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

import pytest
import requests
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from orchestrations.export import RUN_GENERATIONS
from shared.export.destination import EMULATOR_KEY
from testkit.exporting import (
    FLAG,
    durable,
    error_log,
    export_body,
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

OPERATION_FILES = ("errors.log", "manifest-sha256.txt")  # what an export writes beside its results/


hosts, store, destination = host_fixtures("export-hosts")


def test_the_published_example_exports_exactly_its_files_byte_identical(hosts, store, destination,
                                                                       storage_connection_string):
    host = hosts()
    study, whole_study = put_study(store, 4, series_count=2)
    other, other_study = put_study(store, 6, series_count=2)
    series_names = {n: d for n, d in other_study.items() if n.startswith(f"{other}/{other}.1/")}
    _, third_study = put_study(store, 3)
    instance_name = min(third_study)
    values = [study, f"{other}/{other}.1", instance_name[: -len(".dcm")]]

    operation = start(host, export_body(values, destination, storage_connection_string, source_key="sources"))

    assert operation["href"] == f"{host.base_url}/v1/operations/{operation['id']}"
    done = finished(operation["href"])
    expected = {**whole_study, **series_names, instance_name: third_study[instance_name]}
    assert done["status"] == "completed"
    assert done["results"] == {"errorHref": f"{destination.url}/{operation['id']}/errors.log",
                               "exported": len(expected), "skipped": 0, "total": len(expected),
                               "manifestHref": f"{destination.url}/{operation['id']}/manifest-sha256.txt",
                               **manifest_digest(destination, operation["id"])}
    assert results(destination, operation["id"]) == expected
    assert {b.name for b in destination.list_blobs()} == ({f"{operation['id']}/results/{n}" for n in expected}
                                                          | {f"{operation['id']}/{n}" for n in OPERATION_FILES})
    assert sorted(manifest(destination, operation["id"])) == manifest_of(expected)
    assert error_log(destination, operation["id"]) == []


def test_unknown_identifiers_are_skipped_and_only_they_are_logged(hosts, store, destination,
                                                                  storage_connection_string):
    host = hosts()
    study, stored = put_study(store, 9, series_count=3)
    neighbour, _ = put_study(store, 1)  # stored, not exported: only an unknown instance of its series is asked for
    unknown = [uid(), f"{study}/{study}.7", f"{neighbour}/{neighbour}.1/{neighbour}.1.999"]
    series = [f"{study}/{study}.{n}" for n in (1, 2, 3)]

    operation = start(host, export_body([unknown[0], *series, *unknown[1:]], destination, storage_connection_string))

    done = finished(operation["href"])
    assert (done["results"]["exported"], done["results"]["skipped"]) == (9, 3)
    lines = error_log(destination, operation["id"])
    assert sorted(line["identifier"] for line in lines) == sorted(unknown)
    assert all(set(line) == {"timestamp", "identifier", "error"} for line in lines)
    assert results(destination, operation["id"]) == stored


def test_v1_says_completed_and_v2_says_succeeded_for_the_same_operation(hosts, store, destination,
                                                                        storage_connection_string):
    host = hosts()
    study, _ = put_study(store, 2)
    operation = start(host, export_body([study], destination, storage_connection_string), route="v2/export")
    assert operation["href"] == f"{host.base_url}/v2/operations/{operation['id']}"
    assert finished(operation["href"])["status"] == "succeeded"
    for route, status in (("operations", "completed"), ("v1/operations", "completed"),
                          ("v2/operations", "succeeded")):
        r = requests.get(f"{host.base_url}/{route}/{operation['id']}", timeout=30)
        assert (r.status_code, r.json()["status"]) == (200, status)
    # The durable status URL of the instance works too.
    assert durable(host, operation["id"])["runtimeStatus"] == "Completed"


def test_progress_is_visible_while_running_and_created_time_survives_every_generation(
        hosts, store, destination, storage_connection_string):
    host = hosts(Export__BatchSize="2", Export__MaxParallelBatches="1")
    study, _ = put_study(store, 120, series_count=4)
    operation = start(host, export_body([study], destination, storage_connection_string))
    seen = []

    def progress_seen():
        current = view(operation["href"])
        seen.append(current)
        return current["status"] == "running" and 0 < current["results"]["exported"] < 120

    wait_for(progress_seen, timeout=60, interval=0.02, message="partial progress")
    generation = durable(host, operation["id"], showInput="false")
    done = finished(operation["href"])

    assert done["results"]["exported"] == 120
    counts = [v["results"]["exported"] for v in seen]
    assert counts == sorted(counts)  # progress only grows
    assert {v["createdTime"] for v in seen + [done]} == {seen[0]["createdTime"]}
    assert generation["customStatus"]["generation"] > 1
    assert generation["createdTime"] > seen[0]["createdTime"][:19]  # the durable execution was renewed


def test_cancel_stops_the_export_with_the_progress_reached_and_its_manifest_and_retry_finishes_it(hosts, store, destination, storage_connection_string):
    host = hosts(Export__BatchSize="2", Export__MaxParallelBatches="1")
    study, _ = put_study(store, 150, series_count=3)
    operation = start(host, export_body([study], destination, storage_connection_string), route="v2/export")
    wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, timeout=60, interval=0.02,
             message="the first files")

    r = requests.post(f"{host.base_url}/v2/operations/{operation['id']}/cancel", timeout=30)

    assert r.status_code == 202, r.text
    done = finished(operation["href"])
    assert done["status"] == "canceled"
    assert 0 < done["results"]["exported"] < 150
    again = requests.post(f"{host.base_url}/v2/operations/{operation['id']}/cancel", timeout=30)
    assert again.status_code == 202
    assert view(operation["href"])["results"] == done["results"]
    # It committed the manifest of what its counts count (tests/export/test_operate.py has the other controls).
    lines = manifest(destination, operation["id"])
    assert len(lines) == done["results"]["exported"]
    assert done["results"].items() >= manifest_digest(destination, operation["id"]).items()
    assert {name for name, _ in lines} <= set(results(destination, operation["id"]))
    # Retried in place, it finishes every file exactly once.
    assert requests.post(f"{host.base_url}/v2/operations/{operation['id']}/retry", timeout=30).status_code == 202
    retried = finished(operation["href"])
    assert (retried["status"], retried["results"]["exported"]) == ("succeeded", 150)
    assert sorted(manifest(destination, operation["id"])) == manifest_of(results(destination, operation["id"]))


def test_deleting_the_destination_container_mid_export_fails_the_operation_with_the_reason(
        hosts, store, destination, storage_connection_string):
    host = hosts(Export__BatchSize="2", Export__MaxParallelBatches="1")
    study, _ = put_study(store, 150, series_count=3)
    operation = start(host, export_body([study], destination, storage_connection_string))
    wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, timeout=60, interval=0.02,
             message="the first files")

    destination.delete_container()

    done = finished(operation["href"])
    assert done["status"] == "failed"
    assert done["errors"] == [
        f"container '{destination.container_name}' in storage account 'devstoreaccount1' does not exist"]
    assert done["results"]["exported"] < 150


def test_three_thousand_instances_take_many_generations_with_bounded_history(hosts, store, destination,
                                                                             storage_connection_string):
    host = hosts(Export__BatchSize="50", Export__MaxParallelBatches="4", Export__MaxParallelThreads="8")
    study, stored = put_study(store, 3000, series_count=10, size=16)
    operation = start(host, export_body([study], destination, storage_connection_string))

    done = finished(operation["href"], timeout=300)

    assert done["results"] == {"errorHref": f"{destination.url}/{operation['id']}/errors.log",
                               "exported": 3000, "skipped": 0, "total": 3000,
                               "manifestHref": f"{destination.url}/{operation['id']}/manifest-sha256.txt",
                               **manifest_digest(destination, operation["id"])}
    final = durable(host, operation["id"], showHistory="true", showInput="false")
    assert final["output"]["generation"] == 3000 // 200 + 1  # 15 generations of 4 × 50, then done
    # one run's history only (continued as new every RUN_GENERATIONS generations): its start and end, and per
    # generation at most an expand and 4 copies (each folded with its scheduling) and a zero-length timer beside
    # each (created, fired), then the commit with its timer
    assert len(final["historyEvents"]) <= 2 + (RUN_GENERATIONS * (1 + 4) + 1) * 3
    # Byte-identical, by the MD5 the storage service computed of what it received (3 000 downloads would be slow).
    prefix = f"{operation['id']}/results/"
    copied = {b.name[len(prefix):]: bytes(b.content_settings.content_md5)
              for b in destination.list_blobs(name_starts_with=prefix)}
    assert copied == {name: hashlib.md5(data).digest() for name, data in stored.items()}


@pytest.mark.parametrize("form", ["blobContainerUri", "connectionString"])
def test_no_sas_anywhere_in_the_task_hub_log_or_responses_after_an_export_with_a_sas(hosts, store, destination,
                                                                                      form):
    host = hosts()
    study, _ = put_study(store, 12, series_count=2)
    sas = generate_container_sas("devstoreaccount1", destination.container_name, account_key=EMULATOR_KEY,
                                 permission=ContainerSasPermissions(read=True, write=True, create=True, add=True,
                                                                    list=True),
                                 expiry=datetime.now(UTC) + timedelta(hours=1))
    settings = {"blobContainerUri": f"{destination.url}?{sas}"} if form == "blobContainerUri" else {
        "connectionString": f"BlobEndpoint={destination.url.rsplit('/', 1)[0]};SharedAccessSignature={sas}",
        "blobContainerName": destination.container_name}
    body = {"source": {"type": "identifiers", "settings": {"values": [study, uid()]}},
            "destination": {"type": "azureblob", "settings": settings}}
    operation = start(host, body)
    done = finished(operation["href"])
    assert (done["results"]["exported"], done["results"]["skipped"]) == (12, 1)

    signature = unquote(sas.split("sig=")[1].split("&")[0])
    spellings = {signature, quote(signature, safe=""), quote(signature), sas}
    responses = [json.dumps(done), json.dumps(durable(host, operation["id"], showHistory="true",
                                                      showHistoryOutput="true", showInput="true")),
                 requests.get(f"{host.base_url}/v1/operations", timeout=30).text,
                 destination.download_blob(f"{operation['id']}/errors.log").readall().decode()]
    hub_files = [p for p in host.data_dir.rglob("*") if p.is_file()]
    assert hub_files
    for spelling in spellings:
        assert not any(spelling in text for text in responses)
        assert spelling not in host.log()
        for path in hub_files:
            assert spelling.encode() not in path.read_bytes(), path


def test_an_idempotency_key_returns_the_same_operation_instead_of_a_second_export(
        hosts, store, destination, storage_connection_string):
    host = hosts()
    study, _ = put_study(store, 3)
    key = uuid.uuid4().hex
    body = export_body([study], destination, storage_connection_string)

    first = start(host, body, **{"Idempotency-Key": key})
    finished(first["href"])
    second = start(host, body, **{"Idempotency-Key": key})

    assert second == first
    assert [b.name for b in destination.list_blobs() if b.name.endswith("errors.log")] == [
        f"{first['id']}/errors.log"]
    assert view(first["href"])["results"]["exported"] == 3
    other = export_body([uid()], destination, storage_connection_string)
    r = requests.post(f"{host.base_url}/export", json=other, headers={"Idempotency-Key": key}, timeout=30)
    assert r.status_code == 422 and "Idempotency-Key" in r.json()["error"]


def test_listing_filters_by_status_newest_first(hosts, store, destination, storage_connection_string):
    host = hosts()
    study, _ = put_study(store, 1)
    operations = [start(host, export_body([study], destination, storage_connection_string)) for _ in range(2)]
    for operation in operations:
        finished(operation["href"])
    r = requests.get(f"{host.base_url}/v2/operations", params={"status": "succeeded"}, timeout=30)
    assert r.status_code == 200
    listed = r.json()["operations"]
    ids = [o["operationId"] for o in listed]
    assert ids.index(operations[1]["id"]) < ids.index(operations[0]["id"])
    assert {o["status"] for o in listed} == {"succeeded"}
    assert [o["createdTime"] for o in listed] == sorted((o["createdTime"] for o in listed), reverse=True)
    bad = requests.get(f"{host.base_url}/v1/operations", params={"status": "done"}, timeout=30)
    assert bad.status_code == 400 and "status" in bad.json()["error"]


def test_the_listing_is_complete_past_the_durable_page_and_pages_with_a_token(hosts, destination,
                                                                             storage_connection_string):
    """The durable client's get_status_all stops at 100 instances; the listing follows every page."""
    host = hosts()
    body = export_body([uid()], destination, storage_connection_string)
    with ThreadPoolExecutor(8) as pool:
        started = {o["id"] for o in pool.map(lambda _: start(host, body), range(105))}
    listed = requests.get(f"{host.base_url}/v1/operations", timeout=60).json()
    everything = {o["operationId"] for o in listed["operations"]}
    assert started <= everything and "continuationToken" not in listed
    paged, token, pages = [], None, 0
    while True:
        params = {"top": "40", **({"continuationToken": token} if token else {})}
        page = requests.get(f"{host.base_url}/v2/operations", params=params, timeout=60).json()
        assert len(page["operations"]) <= 40
        paged += [o["operationId"] for o in page["operations"]]
        pages += 1
        token = page.get("continuationToken")
        if not token:
            break
    assert pages == -(-len(everything) // 40) and sorted(paged) == sorted(everything)
    for bad in ({"top": ""}, {"top": "0"}, {"top": "x"}, {"top": "1001"}, {"continuationToken": "forged"},
                {"continuationToken": "line\nbreak"}, {"continuationToken": "é"}):
        r = requests.get(f"{host.base_url}/v1/operations", params=bad, timeout=30)
        assert r.status_code == 400 and next(iter(bad)) in r.json()["error"], (bad, r.text)


def test_unknown_and_malformed_operation_ids(hosts):
    host = hosts()
    unknown = requests.get(f"{host.base_url}/v1/operations/{uuid.uuid4().hex}", timeout=30)
    assert unknown.status_code == 404 and "does not exist" in unknown.json()["error"]
    for bad in ("not-an-id", uuid.uuid4().hex.upper(), str(uuid.uuid4())):
        for method, path in (("GET", f"operations/{bad}"), ("POST", f"v1/operations/{bad}/cancel")):
            r = requests.request(method, f"{host.base_url}/{path}", timeout=30)
            assert r.status_code == 400 and "malformed" in r.json()["error"], (method, path, r.text)


# Each refusal through HTTP: (case, body, headers, status, words in the error message).
def _refusals(conn: str, container: str) -> list[tuple]:
    good = {"source": {"type": "identifiers", "settings": {"values": ["1.2.3"]}},
            "destination": {"type": "azureblob", "settings": {"connectionString": conn,
                                                              "blobContainerName": container}}}
    settings = good["destination"]["settings"]
    container_url = f"{conn.split('BlobEndpoint=')[1].rstrip(';')}/{container}"

    def with_settings(**changes):
        return {**good, "destination": {"type": "azureblob", "settings": {**settings, **changes}}}

    def with_sas(key: str, permission: ContainerSasPermissions):
        sas = generate_container_sas("devstoreaccount1", container, account_key=key, permission=permission,
                                     expiry=datetime.now(UTC) + timedelta(hours=1))
        return {**good, "destination": {"type": "azureblob", "settings": {"blobContainerUri": f"{container_url}?{sas}"}}}

    return [
        ("wrong content type", json.dumps(good), {"Content-Type": "text/plain"}, 415, "Content-Type"),
        ("too large", json.dumps({**good, "pad": "x" * 70000}), {}, 413, "Export__MaxRequestBytes"),
        ("not JSON", "{", {}, 400, "not valid JSON"),
        ("not an object", "[]", {}, 400, "JSON object"),
        ("unknown source type", {**good, "source": {"type": "search", "settings": {}}}, {}, 400, "source.type"),
        ("empty values", {**good, "source": {"type": "identifiers", "settings": {"values": []}}}, {}, 400,
         "values is empty"),
        ("invalid identifier", {**good, "source": {"type": "identifiers", "settings": {"values": ["1.2", "x"]}}},
         {}, 400, "values[1]"),
        ("container name Azure rejects", with_settings(blobContainerName="No_Way"), {}, 400, "blobContainerName"),
        ("missing container", with_settings(blobContainerName="absent-container"), {}, 400,
         "container 'absent-container' in storage account 'devstoreaccount1' does not exist"),
        ("managed identity with a connection string", with_settings(useManagedIdentity=True), {}, 400,
         "useManagedIdentity"),
        ("real account key", with_settings(connectionString="AccountName=a1b;AccountKey=a2V5"), {}, 400,
         "AccountKey"),
        ("not an Azure host", {**good, "destination": {"type": "azureblob", "settings": {
            "blobContainerUri": "https://example.com/export?sv=1&sig=abc"}}}, {}, 400, "not an Azure Storage"),
        ("unreachable storage", with_settings(
            connectionString=conn.replace(conn.split("BlobEndpoint=")[1].split("/")[2], "127.0.0.1:9")), {}, 400,
         "unreachable"),
        ("SAS signed with another key", with_sas(base64.b64encode(b"k" * 64).decode(),
                                                 ContainerSasPermissions(write=True, create=True)), {}, 400,
         "refused access"),
        ("read-only SAS", with_sas(EMULATOR_KEY, ContainerSasPermissions(read=True)), {}, 400, "refused access"),
        ("malformed Idempotency-Key", good, {"Idempotency-Key": "x" * 300}, 400, "Idempotency-Key"),
    ]


def test_every_refusal_answers_its_status_and_message_and_starts_nothing(hosts, destination,
                                                                        storage_connection_string):
    host = hosts(Export__MaxRequestBytes="65536")
    before = requests.get(f"{host.base_url}/v1/operations", timeout=30).json()["operations"]
    for case, body, headers, status, words in _refusals(storage_connection_string, destination.container_name):
        data = body if isinstance(body, str) else json.dumps(body)
        r = requests.post(f"{host.base_url}/export", data=data.encode(),
                          headers={"Content-Type": "application/json", **headers}, timeout=60)
        assert r.status_code == status, (case, r.text)
        assert words in r.json()["error"], (case, r.json())
        assert "sig=" not in r.text and "AccountKey=" not in r.text, case
    assert list(destination.list_blobs()) == []
    assert requests.get(f"{host.base_url}/v1/operations", timeout=30).json()["operations"] == before


def test_export_is_404_naming_the_setting_when_the_feature_is_off(hosts, destination, storage_connection_string):
    host = hosts(**{FLAG: "false"})
    for route in ("export", "v1/export", "v2/export"):
        r = requests.post(f"{host.base_url}/{route}",
                          json=export_body(["1.2"], destination, storage_connection_string), timeout=30)
        assert r.status_code == 404 and FLAG in r.json()["error"]
    assert list(destination.list_blobs()) == []


def test_a_request_without_source_exports_the_whole_store(hosts, destination, storage_connection_string):
    container = f"whole-{uuid.uuid4().hex[:10]}"
    host = hosts(DicomStore__ContainerName=container)
    stored = {}
    for _ in range(3):
        stored.update(put_study(open_store(storage_connection_string, container), 4, series_count=2)[1])
    body = export_body(["1.2"], destination, storage_connection_string)
    del body["source"]

    operation = start(host, body)
    done = finished(operation["href"])

    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", 12, 0)
    assert results(destination, operation["id"]) == stored
