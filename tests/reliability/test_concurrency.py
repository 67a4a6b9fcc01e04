"""Exports running side by side: eight started at once into one container, over overlapping identifiers,
each end with exactly their own files and their own errors.log; and retries of one POST with the same
Idempotency-Key — one after another, or all at once — start exactly one export.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from azure.storage.blob import ContainerClient

from testkit.exporting import (
    Hosts,
    error_log,
    export_body,
    finished,
    instance_ids,
    manifest_digest,
    new_container,
    results,
    start,
    view,
)
from testkit.host import Host
from testkit.seed import open_store, put_study, uid

ROUTES = ("export", "v1/export", "v2/export")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, storage_connection_string: str) -> Hosts:
    hosts = Hosts(tmp_path_factory.mktemp("concurrency-hosts"), storage_connection_string)
    yield hosts
    hosts.stop()


@pytest.fixture(scope="module")
def store(hosts: Hosts):
    return open_store(hosts.connection_string, hosts.store_container)


def all_at_once(count: int, call: Callable[[int], object]) -> list:
    """`call(0)` … `call(count - 1)` on as many threads, released together."""
    barrier = threading.Barrier(count)

    def released(n: int):
        barrier.wait()
        return call(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(released, range(count)))


def test_eight_exports_at_once_into_one_container_each_get_exactly_their_own(hosts: Hosts, store) -> None:
    host = hosts(Export__BatchSize="3", Export__MaxParallelBatches="2")
    conn = hosts.connection_string
    (a, in_a), (b, in_b), (c, in_c) = (put_study(store, n, series_count=2) for n in (14, 9, 6))
    stored = {**in_a, **in_b, **in_c}
    series_a = f"{a}/{a}.1"
    instance_c = min(in_c).removesuffix(".dcm")
    unknown = [uid() for _ in range(8)]  # one per export, so each errors.log is its own
    requests_made = [
        [a], [a, b], [series_a, b], [b, c, a], [instance_c, series_a], [c, series_a, a], [b, instance_c], [a, b, c],
    ]
    destination = new_container(conn)

    def expected(values: list[str]) -> dict[str, bytes]:
        return {name: data for name, data in stored.items() if any(name.startswith(f"{v}/") or name == f"{v}.dcm"
                                                                   for v in values)}

    def go(n: int) -> dict:
        body = export_body([*requests_made[n], unknown[n]], destination, conn)
        return start(host, body, route=ROUTES[n % 3])

    operations = all_at_once(8, go)
    done = [finished(o["href"], timeout=180) for o in operations]

    assert len({o["id"] for o in operations}) == 8
    prefixes = set()
    for n, (operation, final) in enumerate(zip(operations, done)):
        files = expected(requests_made[n])
        assert final["status"] in ("completed", "succeeded"), final
        assert (final["results"]["exported"], final["results"]["skipped"]) == (len(files), 1), n
        assert results(destination, operation["id"]) == files
        assert [line["identifier"] for line in error_log(destination, operation["id"])] == [unknown[n]]
        prefixes.add(operation["id"])
    assert {b.name.split("/")[0] for b in destination.list_blobs()} == prefixes


@pytest.fixture
def destination(hosts: Hosts) -> ContainerClient:
    return new_container(hosts.connection_string)


def test_a_repeated_idempotency_key_returns_the_same_operation_and_starts_nothing(
        hosts: Hosts, store, destination: ContainerClient) -> None:
    host = hosts()
    study, stored = put_study(store, 4)
    lost = uid()
    body = export_body([study, lost], destination, hosts.connection_string)
    key = f"retry-{uuid.uuid4()}"

    first = start(host, body, **{"Idempotency-Key": key})
    before = instance_ids(host)
    finished(first["href"])
    again = [start(host, body, route=route, **{"Idempotency-Key": key}) for route in ROUTES]

    assert {o["id"] for o in again} == {first["id"]}
    assert [o["href"].rsplit("/", 3)[1] for o in again] == ["v1", "v1", "v2"]  # the route's version, as always
    assert instance_ids(host) == before
    assert view(first["href"])["results"] == {"errorHref": f"{destination.url}/{first['id']}/errors.log",
                                              "exported": len(stored), "skipped": 1, "total": len(stored) + 1,
                                              "manifestHref": f"{destination.url}/{first['id']}/manifest-sha256.txt",
                                              **manifest_digest(destination, first["id"])}
    assert [line["identifier"] for line in error_log(destination, first["id"])] == [lost]  # not re-created
    assert {b.name.split("/")[0] for b in destination.list_blobs()} == {first["id"]}

    other_key = start(host, body, **{"Idempotency-Key": f"{key}-other"})
    assert other_key["id"] != first["id"]
    other_request = requests.post(f"{host.base_url}/export", json=export_body([study], destination,
                                                                             hosts.connection_string),
                                  headers={"Idempotency-Key": key}, timeout=30)
    assert other_request.status_code == 422 and "Idempotency-Key" in other_request.json()["error"]


def test_retries_racing_with_the_same_key_start_exactly_one_export(hosts: Hosts, store,
                                                                   destination: ContainerClient) -> None:
    host: Host = hosts()
    study, stored = put_study(store, 6)
    lost = uid()
    body = export_body([study, lost], destination, hosts.connection_string)
    key = f"race-{uuid.uuid4()}"
    before = instance_ids(host)

    answers = all_at_once(8, lambda _: requests.post(f"{host.base_url}/export", json=body,
                                                     headers={"Idempotency-Key": key}, timeout=60))

    assert [r.status_code for r in answers] == [202] * 8, [r.text for r in answers]
    [operation_id] = {r.json()["id"] for r in answers}
    assert instance_ids(host) - before == {operation_id}
    done = finished(answers[0].json()["href"])
    assert (done["results"]["exported"], done["results"]["skipped"]) == (len(stored), 1)
    assert [line["identifier"] for line in error_log(destination, operation_id)] == [lost]
    assert results(destination, operation_id) == stored
