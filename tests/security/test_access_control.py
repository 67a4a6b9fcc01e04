"""Function keys, as Azure enforces them: with keys configured every route but GET /admin/host/status answers
401 without a valid key — the durable management webhooks included, which take only the system or master
key. A function key works in the `x-functions-key` header and in the `code` query parameter. No key ever
shows in the host's log or in an href handed to a client. Without keys the host is open and says so.

Keys live where Azure keeps them with file-based secret storage: `<data dir>/secrets/host.json`.
"""

from __future__ import annotations

import secrets
import uuid

import pytest
import requests
import yaml

from testkit.exporting import WEBHOOK, Hosts, export_body, export_host, finished, new_container
from testkit.host import ROOT, Host, write_keys
from testkit.seed import open_store, put_study

MASTER, FUNCTION, SYSTEM = (f"{name}-{secrets.token_urlsafe(24)}" for name in ("master", "function", "system"))
SAMPLE = {"id": uuid.uuid4().hex, "study": "1.2.3", "series": "1.2.3.4", "sop": "1.2.3.4.5", "partitionName": "Microsoft.Default"}


def documented_routes() -> list[tuple[str, str]]:
    """(METHOD, path with sample values) for every route of openapi.yaml (== the registered ones)."""
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    return [(method.upper(), path.format(**SAMPLE)) for path, item in document["paths"].items() for method in item]


DURABLE_ROUTES = [
    ("GET", f"{WEBHOOK}/instances"),
    ("DELETE", f"{WEBHOOK}/instances?createdTimeFrom=2000-01-01T00:00:00Z"),
    ("GET", f"{WEBHOOK}/instances/{SAMPLE['id']}"),
    ("DELETE", f"{WEBHOOK}/instances/{SAMPLE['id']}"),
    ("POST", f"{WEBHOOK}/instances/{SAMPLE['id']}/terminate"),
    ("POST", f"{WEBHOOK}/instances/{SAMPLE['id']}/suspend"),
    ("POST", f"{WEBHOOK}/instances/{SAMPLE['id']}/resume"),
    ("POST", f"{WEBHOOK}/instances/{SAMPLE['id']}/raiseEvent/approval"),
    ("POST", f"{WEBHOOK}/orchestrators/export_orchestrator"),
    ("POST", f"{WEBHOOK}/orchestrators/export_orchestrator/{SAMPLE['id']}"),
]
ADMIN_ROUTES = [("GET", "/admin/functions"), ("POST", "/admin/host/status"), ("GET", "/admin/host/keys")]


@pytest.fixture(scope="module")
def keyed_host(tmp_path_factory: pytest.TempPathFactory, hosts: Hosts) -> Host:
    data = tmp_path_factory.mktemp("keyed") / "hub"
    write_keys(data, MASTER, FUNCTION, SYSTEM)
    host = export_host(data, hosts.connection_string, hosts.store_container).start()
    yield host
    host.stop()


def call(host: Host, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, host.base_url + path, timeout=60, **kwargs)


def test_without_a_valid_key_every_route_but_host_status_is_401(keyed_host: Host) -> None:
    assert call(keyed_host, "GET", "/admin/host/status").status_code == 200
    routes = documented_routes() + DURABLE_ROUTES + ADMIN_ROUTES
    assert len(routes) >= 29 + 10
    problems = []
    for method, path in routes:
        for name, kwargs in (("no key", {}), ("a wrong key", {"headers": {"x-functions-key": "wrong"}}),
                             ("a wrong code", {"params": {"code": "wrong"}}),
                             ("an empty key", {"headers": {"x-functions-key": ""}})):
            r = call(keyed_host, method, path, **kwargs)
            if r.status_code != 401:
                problems.append(f"{method} {path} with {name}: {r.status_code}")
    assert problems == []


def test_a_function_key_opens_the_app_routes_and_only_system_or_master_the_webhooks(keyed_host: Host) -> None:
    problems = []
    for method, path in documented_routes():
        for kwargs in ({"headers": {"x-functions-key": FUNCTION}}, {"params": {"code": FUNCTION}},
                       {"headers": {"x-functions-key": MASTER}}):
            status = call(keyed_host, method, path, **kwargs).status_code
            if status == 401 or status >= 500:
                problems.append(f"{method} {path} {kwargs}: {status}")
    for method, path in DURABLE_ROUTES:
        if call(keyed_host, method, path, headers={"x-functions-key": FUNCTION}).status_code != 401:
            problems.append(f"{method} {path} opened by a function key")
        for key in (SYSTEM, MASTER):
            status = call(keyed_host, method, path, params={"code": key}).status_code
            if status in (401, 403) or status >= 500:
                problems.append(f"{method} {path} with the {'system' if key == SYSTEM else 'master'} key: {status}")
    assert problems == []


def test_an_export_runs_end_to_end_with_a_key_and_no_key_leaks(keyed_host: Host, hosts: Hosts) -> None:
    conn = hosts.connection_string
    study, stored = put_study(open_store(conn, hosts.store_container), 7)
    destination = new_container(conn)
    header = {"x-functions-key": FUNCTION}
    r = call(keyed_host, "POST", "/v2/export", params={"code": FUNCTION}, json=export_body([study], destination, conn))
    assert r.status_code == 202, r.text
    operation = r.json()
    assert FUNCTION not in operation["href"] and FUNCTION not in r.headers["Location"]

    assert requests.get(operation["href"], timeout=30).status_code == 401
    done = finished(operation["href"], **header)
    assert (done["status"], done["results"]["exported"]) == ("succeeded", len(stored))
    listed = call(keyed_host, "GET", "/v2/operations", params={"code": FUNCTION}).text
    assert operation["id"] in listed
    log = keyed_host.log()
    assert "Function keys are required" in log
    for key in (MASTER, FUNCTION, SYSTEM):
        assert key not in log
        assert key not in listed


def test_without_keys_the_host_is_open_and_says_so(hosts: Hosts) -> None:
    host = hosts()
    assert not (host.data_dir / "secrets" / "host.json").exists()
    assert call(host, "GET", "/v1/operations").status_code == 200
    assert call(host, "GET", f"{WEBHOOK}/instances").status_code == 200
    assert "No function keys configured: every route is open" in host.log()


def test_start_needs_a_key_too(keyed_host: Host, hosts: Hosts) -> None:
    """A POST /export without a key starts nothing, even with a body that would be accepted."""
    destination = new_container(hosts.connection_string)
    body = export_body(["1.2.3"], destination, hosts.connection_string)
    assert call(keyed_host, "POST", "/export", json=body).status_code == 401
    assert list(destination.list_blobs()) == []
