"""Malformed and hostile requests on every route: each gets a 4xx with a message, never a 5xx, and none
starts an orchestration or writes a blob.

One table, sent to one host configured as in production (no emulator destinations). Before and after,
the test takes the durable instance list (through the durable webhook) and every blob of every
container in the storage account, and requires both unchanged.
"""

from __future__ import annotations

import json
import socket
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from testkit.exporting import Hosts, export_body, instance_ids
from testkit.host import Host
from testkit.instances import make_instance, multipart, stow_content_type

HOOK = "/runtime/webhooks/durabletask"
OPERATION = uuid.uuid4().hex  # well formed, never started
INJECTED = "X-Injected"
CRLF_INJECTION = f"%0D%0A{INJECTED}:%20yes%0D%0ASet-Cookie:%20session=stolen"
STOW = stow_content_type()
SAS_URI = "https://exampleaccount.blob.core.windows.net/export?sv=2022-11-02&sp=cw&sig=c2lnbmF0dXJl"


@dataclass
class Hostile:
    """One request: what is sent and what must come back (status, and words the message must contain)."""

    name: str
    method: str
    path: str
    status: int
    words: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    params: dict[str, str] | None = None
    raw: bytes | None = None  # sent byte for byte over a socket, for what HTTP clients refuse to send

    def __str__(self) -> str:
        return self.name


def _export(**changes: Any) -> bytes:
    """The JSON of a well-formed export to a (fictitious) Azure container, with `changes` at the top level."""
    return json.dumps({**export_body(["1.2.3"], blobContainerUri=SAS_URI), **changes}).encode()


def _values(*values: Any) -> bytes:
    return json.dumps(export_body(list(values), blobContainerUri=SAS_URI)).encode()


def _destination(**settings: Any) -> bytes:
    return json.dumps(export_body(["1.2.3"], **settings)).encode()


JSON = {"Content-Type": "application/json"}
GOOD_EXPORT = _export()
DEEP = b'{"source": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
with warnings.catch_warnings():  # pydicom warns about the invalid UID we mean to send
    warnings.simplefilter("ignore")
    PART_WITH_TRAVERSAL = multipart(make_instance(sop="1.2.3/../../4"))

CASES = [
    # -- POST export: types, sizes, encodings, shapes
    Hostile("values is a string", "POST", "/export", 400, "values", JSON,
            json.dumps(export_body("1.2.3", blobContainerUri=SAS_URI)).encode()),  # type: ignore[arg-type]
    Hostile("source is a list", "POST", "/v1/export", 400, "source must be an object", JSON, _export(source=[1])),
    Hostile("a value is a number", "POST", "/v2/export", 400, "values[1]", JSON, _values("1.2", 3)),
    Hostile("a value is NaN", "POST", "/export", 400, "values[0]", JSON,
            _values(0).replace(b"[0]", b"[NaN]")),
    Hostile("body above the request limit", "POST", "/export", 413, "Export__MaxRequestBytes", JSON,
            _export(pad="x" * 1_100_000)),
    Hostile("JSON nested 100 000 deep", "POST", "/export", 400, "nested too deeply", JSON, DEEP),
    Hostile("invalid UTF-8", "POST", "/export", 400, "UTF-8", JSON, b'{"source": "\xff\xfe\xfd"}'),
    Hostile("UTF-16 declared", "POST", "/export", 415, "UTF-8",
            {"Content-Type": "application/json; charset=utf-16"}, GOOD_EXPORT.decode().encode("utf-16")),
    Hostile("text/plain", "POST", "/export", 415, "Content-Type", {"Content-Type": "text/plain"}, GOOD_EXPORT),
    Hostile("no Content-Type", "POST", "/export", 415, "Content-Type", {}, GOOD_EXPORT),
    Hostile("empty body", "POST", "/export", 400, "empty", JSON, b""),
    Hostile("JSON null", "POST", "/export", 400, "JSON object", JSON, b"null"),
    Hostile("unknown top-level field", "POST", "/export", 400, "callbackUrl", JSON,
            _export(callbackUrl="https://attacker.example/")),
    Hostile("unknown destination setting", "POST", "/export", 400, "blobContainerUrl", JSON,
            _destination(blobContainerUrl=SAS_URI)),
    Hostile("the same field twice, in two casings", "POST", "/export", 400, "appears twice", JSON,
            GOOD_EXPORT[:-1] + b', "Source": {}}'),
    Hostile("path traversal in an identifier", "POST", "/export", 400, "values[0]", JSON,
            _values("1.2/../../3")),
    Hostile("encoded traversal in an identifier", "POST", "/export", 400, "values[0]", JSON,
            _values("1.2%2F..%2F..%2F3")),
    Hostile("CRLF in an identifier", "POST", "/export", 400, "values[0]", JSON,
            _values("1.2\r\nSet-Cookie: a=b")),
    Hostile("a 10 000 character identifier", "POST", "/export", 400, "values[0]", JSON, _values("1" * 10_000)),
    Hostile("destination type s3", "POST", "/export", 400, "destination.type", JSON,
            _export(destination={"type": "s3", "settings": {}})),
    Hostile("file:// container URI", "POST", "/export", 400, "blobContainerUri", JSON,
            _destination(blobContainerUri="file:///etc/passwd")),
    Hostile("cloud metadata address", "POST", "/export", 400, "not an Azure Storage blob endpoint", JSON,
            _destination(blobContainerUri="https://169.254.169.254/metadata?sig=x")),
    Hostile("look-alike host", "POST", "/export", 400, "not an Azure Storage blob endpoint", JSON,
            _destination(blobContainerUri="https://acct.blob.core.windows.net.attacker.example/c?sig=x")),
    Hostile("plain http to Azure", "POST", "/export", 400, "https", JSON,
            _destination(blobContainerUri="http://acct.blob.core.windows.net/export?sig=x")),
    Hostile("user info in the URI", "POST", "/export", 400, "user name", JSON,
            _destination(blobContainerUri="https://u:p@acct.blob.core.windows.net/export?sig=x")),
    Hostile("loopback emulator, not allowed here", "POST", "/export", 400, "Export__AllowEmulator", JSON,
            _destination(blobContainerUri="http://127.0.0.1:22/devstoreaccount1/export")),
    Hostile("an account key for a real account", "POST", "/export", 400, "AccountKey", JSON,
            _destination(connectionString="AccountName=acct;AccountKey=a2V5", blobContainerName="export")),
    Hostile("managed identity with a SAS", "POST", "/export", 400, "useManagedIdentity", JSON,
            _destination(blobContainerUri=SAS_URI, useManagedIdentity=True)),
    Hostile("managed identity as a string", "POST", "/export", 400, "useManagedIdentity", JSON,
            _destination(blobContainerUri=SAS_URI, useManagedIdentity="yes")),
    Hostile("Idempotency-Key of 300 characters", "POST", "/export", 400, "Idempotency-Key",
            {**JSON, "Idempotency-Key": "k" * 300}, GOOD_EXPORT),
    Hostile("Idempotency-Key with control characters", "POST", "/export", 400, "Idempotency-Key",
            {**JSON, "Idempotency-Key": "a\tb"}, GOOD_EXPORT),
    Hostile("GET on export", "GET", "/export", 404, "not allowed"),
    Hostile("PUT on v2 export", "PUT", "/v2/export", 404, "not allowed", JSON, GOOD_EXPORT),
    # -- operations: status, cancel, list
    Hostile("traversal as operation id", "GET", "/v1/operations/..%2F..%2Fadmin%2Fhost%2Fstatus", 400, "malformed"),
    Hostile("upper-case operation id", "GET", f"/operations/{OPERATION.upper()}", 400, "malformed"),
    Hostile("NUL in operation id", "GET", "/v2/operations/%00", 400, "malformed"),
    Hostile("CRLF in operation id", "GET", f"/v1/operations/{OPERATION}{CRLF_INJECTION}", 400, "malformed"),
    Hostile("33-digit operation id", "GET", f"/v1/operations/{OPERATION}0", 400, "malformed"),
    Hostile("unknown operation", "GET", f"/v2/operations/{OPERATION}", 404, "does not exist"),
    Hostile("cancel a malformed id", "POST", "/v1/operations/not-hex/cancel", 400, "malformed"),
    Hostile("cancel an unknown operation", "POST", f"/v2/operations/{OPERATION}/cancel", 404, "does not exist"),
    Hostile("GET on cancel", "GET", f"/v1/operations/{OPERATION}/cancel", 404, "not allowed"),
    Hostile("unversioned cancel", "POST", f"/operations/{OPERATION}/cancel", 404, "no function"),
    Hostile("unknown status filter", "GET", "/v1/operations", 400, "status", params={"status": "done"}),
    Hostile("4 000 character status filter", "GET", "/v2/operations", 400, "status",
            params={"status": "running," + "x" * 4_000}),
    Hostile("DELETE on the listing", "DELETE", "/v1/operations", 404, "not allowed"),
    # -- STOW
    Hostile("STOW as JSON", "POST", "/studies", 415, "multipart/related", JSON, b"{}"),
    Hostile("STOW without boundary", "POST", "/v1/studies", 400, "boundary",
            {"Content-Type": 'multipart/related; type="application/dicom"'}, b"--x--"),
    Hostile("STOW body without its boundary", "POST", "/v2/studies", 400, "boundary",
            {"Content-Type": STOW}, b"not multipart at all"),
    Hostile("STOW boundary of 200 characters", "POST", "/studies", 400, "boundary",
            {"Content-Type": f'multipart/related; type="application/dicom"; boundary={"b" * 200}'}, b"--b--"),
    Hostile("STOW truncated body", "POST", "/studies", 400, "truncated",
            {"Content-Type": STOW}, multipart(make_instance())[:-40]),
    Hostile("STOW traversal in the study route", "POST", "/studies/..%2F..%2Fetc", 400, "study",
            {"Content-Type": STOW}, multipart(make_instance())),
    Hostile("STOW instance with traversal in its SOP Instance UID", "POST", "/studies", 409, "00081198",
            {"Content-Type": STOW}, PART_WITH_TRAVERSAL),
    # -- WADO
    Hostile("WADO traversal in the SOP UID", "GET", "/studies/1.2/series/1.3/instances/..%2F..%2Fsecret", 400,
            "sop"),
    Hostile("WADO dot-dot as series", "GET", "/v1/studies/1.2/series/%2E%2E/instances/1.4", 400, "series"),
    Hostile("WADO letters as UIDs", "GET", "/v2/studies/a/series/b/instances/c", 400, "study"),
    Hostile("WADO invalid UTF-8 in a UID", "GET", "/studies/%FF%FE/series/1.3/instances/1.4", 400, "study"),
    Hostile("WADO 65-character UID", "GET", f"/studies/{'1' * 65}/series/1.3/instances/1.4", 400, "64"),
    Hostile("WADO Accept text/html", "GET", "/studies/1.2/series/1.3/instances/1.4", 406, "Accept",
            {"Accept": "text/html"}),
    Hostile("WADO CRLF in a UID", "GET", f"/studies/1.2{CRLF_INJECTION}/series/1.3/instances/1.4", 400, "study"),
    # -- DELETE
    Hostile("DELETE dot-dot study", "DELETE", "/studies/%2E%2E", 400, "study"),
    Hostile("DELETE wildcard series", "DELETE", "/v1/studies/1.2/series/*", 400, "series"),
    Hostile("DELETE NUL in a UID", "DELETE", "/v2/studies/1.2.3%00", 400, "study"),
    Hostile("DELETE the whole store", "DELETE", "/studies", 404, "not allowed"),
    Hostile("DELETE encoded slash in a UID", "DELETE", "/studies/1.2%2F1.3", 400, "study"),
    # -- the durable webhooks
    Hostile("webhook: unknown runtime status", "GET", f"{HOOK}/instances", 400, "runtimeStatus",
            params={"runtimeStatus": "Bogus"}),
    Hostile("webhook: negative page size", "GET", f"{HOOK}/instances", 400, "top", params={"top": "-1"}),
    Hostile("webhook: forged continuation token", "GET", f"{HOOK}/instances", 400, "continuation",
            {"x-ms-continuation-token": "eyJhIjoxfQ=="}),
    Hostile("webhook: flag neither true nor false", "GET", f"{HOOK}/instances/{OPERATION}", 400, "showHistory",
            params={"showHistory": "maybe"}),
    Hostile("webhook: start an unknown orchestrator", "POST", f"{HOOK}/orchestrators/no_such_function", 400,
            "doesn't exist", JSON, b"{}"),
    Hostile("webhook: start with invalid JSON", "POST", f"{HOOK}/orchestrators/export_orchestrator", 400,
            "Invalid JSON", JSON, b"{not json"),
    Hostile("webhook: start with an id starting with @", "POST", f"{HOOK}/orchestrators/export_orchestrator/@x",
            400, "@", JSON, b"{}"),
    Hostile("webhook: purge everything without a start time", "DELETE", f"{HOOK}/instances", 400,
            "createdTimeFrom"),
    # -- the host itself
    Hostile("traversal above the routes", "GET", "/%2e%2e/%2e%2e/etc/passwd", 404, "no function"),
    Hostile("POST on the OpenAPI description", "POST", "/openapi.yaml", 404, "not allowed"),
    Hostile("bare CR smuggling a header into Idempotency-Key", "POST", "/export", 400, "LF",
            raw=b"POST /export HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                b"Idempotency-Key: a\rX-Injected: yes\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"),
    Hostile("a 64 KB header", "GET", "/v1/operations", 400, "8190",
            {"X-Padding": "p" * 65_536}),
]


def send(host: Host, case: Hostile) -> tuple[int, dict[str, str], bytes]:
    if case.raw is not None:
        return _send_raw(host, case.raw)
    r = requests.request(case.method, host.base_url + case.path, headers=case.headers, data=case.body,
                         params=case.params, timeout=60)
    return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content


def _send_raw(host: Host, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", host.port), timeout=30) as s:
        s.sendall(data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def message_of(body: bytes, status: int) -> str:
    """The message a client gets: the JSON error (or, from the durable webhooks, Message), else the text."""
    try:
        document = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()
    if isinstance(document, dict):
        if status == 409 and "00081198" in document:  # STOW: every part failed, each with its reason
            return json.dumps(document)
        durable = " ".join(str(document.get(k) or "") for k in ("Message", "ExceptionMessage")).strip()
        return str(document.get("error") or durable)
    return document if isinstance(document, str) else ""


def snapshot(connection_string: str) -> set[tuple[str, str, str]]:
    """Every blob of every container in the account: (container, name, etag)."""
    service = BlobServiceClient.from_connection_string(connection_string)
    return {(c.name, b.name, b.etag) for c in service.list_containers()
            for b in service.get_container_client(c.name).list_blobs()}


@pytest.fixture(scope="module")
def host(hosts: Hosts) -> Host:
    return hosts(Export__AllowEmulator="false")


def test_there_are_at_least_forty_cases_on_every_route() -> None:
    assert len(CASES) >= 40
    paths = " ".join(c.path for c in CASES)
    for route in ("/export", "/operations/", "/cancel", "/v1/operations", "/studies", "/instances/", HOOK):
        assert route in paths, route
    assert len({c.name for c in CASES}) == len(CASES)


def test_every_hostile_request_is_refused_with_a_message_and_changes_nothing(host: Host, hosts: Hosts) -> None:
    instances, blobs = instance_ids(host), snapshot(hosts.connection_string)
    problems = []
    for case in CASES:
        status, headers, body = send(host, case)
        message = message_of(body, status)
        if status != case.status or not message or case.words not in message:
            problems.append(f"{case}: {status} {message[:300]!r}")
        if INJECTED.lower() in headers or "set-cookie" in headers:
            problems.append(f"{case}: an injected header came back: {headers}")
        if len(message) > 2000:
            problems.append(f"{case}: a {len(message)}-character message echoes the input")
    assert not problems, "\n".join(problems)
    assert "(Failed, Id=" not in host.log(), "a function raised"
    assert instance_ids(host) == instances, "an orchestration was started"
    assert snapshot(hosts.connection_string) == blobs, "a blob was written"
