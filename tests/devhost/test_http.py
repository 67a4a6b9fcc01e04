"""The local host's HTTP behaviour, through a real host process and real HTTP requests."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from testkit.host import Host, hermetic_environ, write_keys

APP = Path(__file__).parent / "apps" / "http_app"
MASTER, FUNCTION_KEY, SYSTEM_KEY = "master-key-0123456789", "function-key-0123456789", "system-key-0123456789"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("http") / "hub"
    host = Host(APP, data, env={"OVERRIDDEN": "environment", "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "4096"},
                settings_file=APP / "local.settings.json").start()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def keyed_host(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("keyed") / "hub"
    write_keys(data, MASTER, FUNCTION_KEY, SYSTEM_KEY)
    host = Host(APP, data).start()
    yield host
    host.stop()


def test_request_reaches_the_function_whole(host: Host) -> None:
    r = requests.post(f"{host.base_url}/api/echo/abc/42?x=1&y=two", data=b"\xff\x00raw", headers={"X-Test": "hi"})
    assert r.status_code == 200
    seen = r.json()
    assert seen["method"] == "POST"
    assert seen["url"] == f"{host.base_url}/api/echo/abc/42?x=1&y=two"
    assert seen["route"] == {"name": "abc", "id": "42"}
    assert seen["params"] == {"x": "1", "y": "two"}
    assert seen["header"] == "hi"
    assert seen["body"].encode("latin-1") == b"\xff\x00raw"


def test_routes_follow_template_rules(host: Host) -> None:
    assert requests.get(f"{host.base_url}/api/echo/special").text == "literal wins"
    assert requests.get(f"{host.base_url}/api/echo/abc").json()["route"] == {"name": "abc"}
    # `{id:int?}` refuses a non-integer; no other function matches.
    assert requests.get(f"{host.base_url}/api/echo/abc/notanint").status_code == 404
    # routePrefix from host.json is honoured.
    assert requests.get(f"{host.base_url}/echo/abc").status_code == 404


def test_a_method_the_function_does_not_accept_is_refused_with_a_message(host: Host) -> None:
    r = requests.put(f"{host.base_url}/api/echo/abc")
    assert r.status_code == 404
    assert "PUT" in r.json()["error"]


def test_async_functions_and_binary_responses(host: Host) -> None:
    r = requests.get(f"{host.base_url}/api/public")
    assert (r.status_code, r.content, r.headers["X-Kind"]) == (200, b"\x00\x01", "async")
    assert r.headers["Content-Type"] == "application/octet-stream"


def test_a_failing_function_gives_an_empty_500_and_the_host_keeps_serving(host: Host) -> None:
    r = requests.get(f"{host.base_url}/api/boom")
    assert (r.status_code, r.content) == (500, b"")  # the host's ExceptionMiddleware sends no body
    assert "the function failed on purpose" in host.log()  # the traceback is logged, not returned
    assert "the function failed on purpose" not in r.text
    assert requests.get(f"{host.base_url}/api/public").status_code == 200


def test_settings_come_from_local_settings_and_the_environment_wins(host: Host) -> None:
    get = lambda name: requests.get(f"{host.base_url}/api/setting", params={"name": name}).text
    assert get("FROM_LOCAL_SETTINGS") == "local"
    assert get("OVERRIDDEN") == "environment"


def test_the_developers_own_settings_never_reach_a_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As a developer pointing the app at Orthanc (docs/STORE_DICOMWEB.md): a setting in the shell and in local.settings.json.
    assert os.environ == hermetic_environ(os.environ), "conftest.py lets the developer's settings into the tests"
    monkeypatch.setenv("DicomStore__Type", "dicomweb")
    app = Path(shutil.copytree(APP, tmp_path / "app"))
    (app / "local.settings.json").write_text(json.dumps({"Values": {"FROM_LOCAL_SETTINGS": "developer"}}))
    host = Host(app, tmp_path / "hub").start()
    try:
        get = lambda name: requests.get(f"{host.base_url}/api/setting", params={"name": name}, timeout=30).text
        assert (get("DicomStore__Type"), get("FROM_LOCAL_SETTINGS")) == ("<unset>", "<unset>")
    finally:
        host.stop()


def test_request_body_limit_answers_413(host: Host) -> None:
    assert requests.post(f"{host.base_url}/api/echo/abc", data=b"x" * 5000).status_code == 413
    assert requests.post(f"{host.base_url}/api/echo/abc", data=b"x" * 4000).status_code == 200


def test_durable_client_binding_points_at_this_host(host: Host) -> None:
    payload = requests.get(f"{host.base_url}/api/client").json()
    assert payload["id"] == "abc"
    assert payload["statusQueryGetUri"].startswith(f"{host.base_url}/runtime/webhooks/durabletask/instances/abc")
    assert "HttpSampleHub" in payload["statusQueryGetUri"]


def test_host_status_and_function_listing(host: Host) -> None:
    status = requests.get(f"{host.base_url}/admin/host/status").json()
    assert status["state"] == "Running"
    log = host.log()
    assert f"echo: [GET,POST] {host.base_url}/api/echo/{{name}}/{{id:int?}}" in log
    assert "every route is open" in log


def test_without_a_key_every_route_but_host_status_is_refused(keyed_host: Host) -> None:
    base = keyed_host.base_url
    assert requests.get(f"{base}/admin/host/status").status_code == 200
    assert requests.get(f"{base}/api/nothing-here").status_code == 404  # as in Azure: no such route
    for method, url in [("GET", "/api/echo/a"), ("GET", "/api/client"), ("PUT", "/api/echo/a"),
                        ("GET", "/runtime/webhooks/durabletask/instances"),
                        ("GET", "/runtime/webhooks/durabletask/instances/abc")]:
        r = requests.request(method, base + url)
        assert r.status_code == 401, url
        assert "key" in r.json()["error"]
        r = requests.request(method, base + url, headers={"x-functions-key": "wrong"})
        assert r.status_code == 401, url


def test_keys_grant_what_azure_grants(keyed_host: Host) -> None:
    base = keyed_host.base_url
    assert requests.get(f"{base}/api/echo/a", headers={"x-functions-key": FUNCTION_KEY}).status_code == 200
    assert requests.get(f"{base}/api/echo/a", params={"code": FUNCTION_KEY}).status_code == 200
    assert requests.get(f"{base}/api/echo/a", headers={"x-functions-key": MASTER}).status_code == 200
    assert requests.get(f"{base}/api/public").status_code == 200  # anonymous
    # Durable webhooks take the system key or the master key, not a function key.
    hook = f"{base}/runtime/webhooks/durabletask/instances"
    assert requests.get(hook, params={"code": FUNCTION_KEY}).status_code == 401
    assert requests.get(hook, params={"code": SYSTEM_KEY}).status_code == 200
    assert requests.get(hook, params={"code": MASTER}).status_code == 200
    # The binding hands the system key to the durable client, so its status URLs work as given.
    payload = requests.get(f"{base}/api/client", headers={"x-functions-key": FUNCTION_KEY}).json()
    assert f"code={SYSTEM_KEY}" in payload["statusQueryGetUri"]
    log = keyed_host.log()
    assert "Function keys are required" in log
    for key in (MASTER, FUNCTION_KEY, SYSTEM_KEY):
        assert key not in log


def test_a_second_host_on_the_same_task_hub_refuses_to_start(host: Host) -> None:
    second = Host(APP, host.data_dir, log_path=host.data_dir.parent / "second.log")
    with pytest.raises(RuntimeError, match="in use by another host process"):
        second.start(timeout=30)
    assert requests.get(f"{host.base_url}/api/public").status_code == 200


def test_a_second_host_on_a_taken_port_says_so_in_one_line(host: Host, tmp_path: Path) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "devhost", "--app-dir", str(APP), "--port", str(host.port),
         "--data-dir", str(tmp_path / "hub")], check=False, cwd=host.cwd, capture_output=True, text=True,
        timeout=60)
    assert second.returncode == 1
    assert f"Cannot start: cannot listen on 127.0.0.1:{host.port}" in second.stderr
    assert "Traceback" not in second.stderr
    assert requests.get(f"{host.base_url}/api/public").status_code == 200


def test_requests_reach_the_worker_converted_as_the_host_converts_them(host: Host) -> None:
    """devhost/http_rpc.py's rules: repeated values joined with commas, query keys case-insensitive,
    empty query values dropped, header names lower-cased, the URL as sent."""
    r = requests.get(f"{host.base_url}/api/inspect?a=1&A=2&empty=&b=%20x", timeout=30,
                     headers={"X-Multi": "one", "X-Empty": ""})
    seen = r.json()
    assert seen["params"] == {"a": "1,2", "b": " x"}
    assert seen["url"] == f"{host.base_url}/api/inspect?a=1&A=2&empty=&b=%20x"
    assert seen["headers"]["x-multi"] == "one" and seen["headers"]["x-empty"] == ""
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)
    connection.putrequest("GET", "/api/inspect")
    connection.putheader("X-Multi", "one")
    connection.putheader("X-Multi", "two")
    connection.endheaders()
    assert json.loads(connection.getresponse().read())["headers"]["x-multi"] == "one,two"
    connection.close()


def test_a_chunked_request_reaches_the_function_without_its_body(host: Host) -> None:
    """The host sends a body only when Content-Length is above 0 (ToRpcHttp), so chunked bodies are lost."""
    sized = requests.post(f"{host.base_url}/api/inspect", data=b"12345", timeout=30).json()
    chunked = requests.post(f"{host.base_url}/api/inspect", data=iter([b"12", b"345"]), timeout=30).json()
    assert (sized["body"], chunked["body"]) == (5, 0)
