"""The destination allow-list: an export writes only to Azure Storage blob endpoints over https (the public
and sovereign clouds' suffixes, or the configured ones), or to the local emulator on a loopback address when
Export__AllowEmulator is on. Anything else is a 400 naming the setting, before any credential is used; and
the activities check again, so an orchestration input forged through the durable API cannot send data (or a
managed-identity token) anywhere else.

Managed identity cannot exist here: its credential is the recording fake of tests/export/test_managed_identity.py.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests

from devhost.azurite import free_port
from shared.errors import ClientError
from shared.export.checkpoint import Batching, Checkpoint
from shared.export.destination import Destination
from shared.export.request import parse_export_request
from shared.export.settings import ExportSettings
from shared.export.steps import prepare
from testkit.exporting import WEBHOOK, Hosts, export_body, finished
from testkit.seed import open_store, put_study
from tests.export import test_managed_identity
from tests.export.test_managed_identity import FakeManagedIdentity

SAS = "sv=2022-11-02&sp=cw&sig=c2lnbmF0dXJl"
identity = test_managed_identity.identity  # the fake credential's fixture, shared
LOOPBACK = f"http://127.0.0.1:{free_port()}/devstoreaccount1"  # nothing listens there

# (case, blobContainerUri, words of the 400 on a host with the emulator allowed, ... with it refused)
REFUSED_EVERYWHERE = [
    ("a look-alike of an Azure host", f"https://acct.blob.core.windows.net.evil.example/export?{SAS}",
     "not an Azure Storage blob endpoint"),
    ("an arbitrary https host", f"https://evil.example/acct/export?{SAS}", "not an Azure Storage blob endpoint"),
    ("an Azure host over plain http", f"http://acct.blob.core.windows.net/export?{SAS}", "must use https"),
    ("an Azure host on another port", f"https://acct.blob.core.windows.net:8443/export?{SAS}", "port 443"),
    ("the bare suffix", f"https://blob.core.windows.net/export?{SAS}", "not an Azure Storage blob endpoint"),
    ("a private address", f"http://10.0.0.5:10000/devstoreaccount1/export?{SAS}", "must use https"),
    ("the cloud metadata service", f"https://169.254.169.254/export?{SAS}", "not an Azure Storage blob endpoint"),
    ("another Azure service", f"https://acct.queue.core.windows.net/export?{SAS}", "not an Azure Storage blob endpoint"),
    ("an ftp URI", f"ftp://acct.blob.core.windows.net/export?{SAS}", "http(s)"),
]
EMULATOR = [
    ("the emulator on 127.0.0.1", f"{LOOPBACK}/export?{SAS}"),
    ("the emulator as localhost", f"{LOOPBACK.replace('127.0.0.1', 'localhost')}/export?{SAS}"),
    ("the emulator on ::1", f"{LOOPBACK.replace('127.0.0.1', '[::1]')}/export?{SAS}"),
]


def post(host, uri: str, **settings) -> requests.Response:
    return requests.post(f"{host.base_url}/export", json=export_body(["1.2.3"], blobContainerUri=uri, **settings),
                         timeout=60)


def test_only_azure_blob_endpoints_over_https_and_the_allowed_emulator(hosts: Hosts) -> None:
    emulator_on, emulator_off = hosts(), hosts(Export__AllowEmulator="false")
    problems = []
    for host in (emulator_on, emulator_off):
        for case, uri, words in REFUSED_EVERYWHERE:
            r = post(host, uri)
            if r.status_code != 400 or words not in r.json()["error"] or "blobContainerUri" not in r.json()["error"]:
                problems.append(f"{case}: {r.status_code} {r.text}")
    for case, uri in EMULATOR:
        r = post(emulator_off, uri)
        if r.status_code != 400 or "Export__AllowEmulator" not in r.json()["error"]:
            problems.append(f"{case}, emulator off: {r.status_code} {r.text}")
        r = post(emulator_on, uri)  # allowed: it gets as far as storage, where nothing answers
        if r.status_code != 400 or "unreachable" not in r.json()["error"]:
            problems.append(f"{case}, emulator on: {r.status_code} {r.text}")
    r = post(emulator_on, f"{LOOPBACK}/export", useManagedIdentity=True)
    if r.status_code != 400 or "https only" not in r.json()["error"]:
        problems.append(f"managed identity to the emulator over http: {r.status_code} {r.text}")
    assert problems == []


def test_the_suffixes_are_configurable(hosts: Hosts) -> None:
    custom = hosts(Export__AllowedHostSuffixes="blob.storage.azure.net")
    r = post(custom, f"https://acct.blob.core.windows.net/export?{SAS}")
    assert r.status_code == 400 and "*.blob.storage.azure.net" in r.json()["error"]
    r = post(custom, f"https://acct.z7.blob.storage.azure.net/export?{SAS}")  # allowed: refused only for DNS
    assert r.status_code == 400 and "unreachable" in r.json()["error"]


@pytest.mark.parametrize("case,uri,words", REFUSED_EVERYWHERE + [(c, u, "Export__AllowEmulator") for c, u in EMULATOR],
                         ids=[c for c, *_ in REFUSED_EVERYWHERE + EMULATOR])
def test_no_managed_identity_token_is_asked_for_a_refused_destination(case, uri, words,
                                                                     identity: FakeManagedIdentity) -> None:
    body = json.dumps(export_body(["1.2.3"], blobContainerUri=uri.split("?")[0], useManagedIdentity=True)).encode()
    with pytest.raises(ClientError) as refused:
        request = parse_export_request(body, "application/json", ExportSettings())
        prepare(request, uuid.uuid4().hex, ExportSettings())
    assert refused.value.status == 400 and words in str(refused.value)
    assert identity.scopes == []


class _Recorder(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def _any(self) -> None:
        self.hits.append(f"{self.command} {self.path}")
        self.send_response(201)
        self.end_headers()

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _any

    def log_message(self, *args) -> None:
        pass


def test_a_forged_orchestration_input_cannot_send_data_elsewhere(hosts: Hosts) -> None:
    """Someone holding the durable webhooks' key starts the orchestrator directly, bypassing the starter's
    checks, with a destination the server refuses: the activities refuse it too, and nothing is sent."""
    host = hosts(Export__AllowEmulator="false")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        study, _ = put_study(open_store(hosts.connection_string, hosts.store_container), 3)
        elsewhere = Destination(f"http://127.0.0.1:{server.server_port}/devstoreaccount1", "loot", "devstoreaccount1")
        operation_id = uuid.uuid4().hex
        forged = Checkpoint(operation_id, (study,), elsewhere.protected(), Batching(5, 2, 3, 2, 0.2, 1.0),
                            "2020-01-01T00:00:00Z", f"{elsewhere.container_url}/{operation_id}/errors.log")
        r = requests.post(f"{host.base_url}{WEBHOOK}/orchestrators/export_orchestrator/{operation_id}",
                          json=forged.to_json(), timeout=30)
        assert r.status_code == 202, r.text
        done = finished(f"{host.base_url}/v1/operations/{operation_id}")
    finally:
        server.shutdown()
    assert done["status"] == "failed"
    assert "Export__AllowEmulator" in done["errors"][0]
    assert _Recorder.hits == []
