"""A SAS token given with an export never appears in clear anywhere an operator or a client could read it:
the task hub files (SQLite database and WAL), the host's log, any status response (the operation routes,
the listing, the durable webhook with showInput, showHistory and showHistoryOutput), errors.log, and the
messages of refused requests and failed exports.

Each check looks for the signature (`sig=` value) in every spelling a leak could take: as issued
(percent-encoded), decoded, and re-encoded.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

import pytest
import requests
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from devhost.azurite import ACCOUNT, ACCOUNT_KEY, free_port
from testkit.exporting import WEBHOOK, Hosts, durable, export_body, finished, new_container, start, view
from testkit.host import Host, wait_for
from testkit.seed import open_store, put_study, uid

PERMISSIONS = ContainerSasPermissions(read=True, write=True, create=True, add=True, list=True)


def container_sas(container: str, key: str = ACCOUNT_KEY) -> str:
    return generate_container_sas(ACCOUNT, container, account_key=key, permission=PERMISSIONS,
                                  expiry=datetime.now(UTC) + timedelta(hours=1))


def spellings(sas: str) -> set[str]:
    signature = unquote(sas.split("sig=")[1].split("&")[0])
    return {signature, quote(signature, safe=""), quote(signature), sas}


def destination_settings(form: str, container: ContainerClient, sas: str) -> dict[str, str]:
    """The destination with the SAS in a container URI, or in a connection string."""
    if form == "blobContainerUri":
        return {"blobContainerUri": f"{container.url}?{sas}"}
    return {"connectionString": f"BlobEndpoint={container.url.rsplit('/', 1)[0]};SharedAccessSignature={sas}",
            "blobContainerName": container.container_name}


def everything_readable(host: Host, operation_id: str) -> dict[str, str]:
    """Every status view of the operation a client or operator can ask for, by where it came from."""
    texts = {}
    for route in ("operations", "v1/operations", "v2/operations"):
        texts[route] = requests.get(f"{host.base_url}/{route}/{operation_id}", timeout=30).text
    for route in ("v1/operations", "v2/operations"):
        texts[f"{route} listing"] = requests.get(f"{host.base_url}/{route}", timeout=30).text
    texts["durable status"] = json.dumps(durable(host, operation_id, showInput="true", showHistory="true",
                                                 showHistoryOutput="true"))
    texts["durable listing"] = requests.get(f"{host.base_url}{WEBHOOK}/instances", params={"showInput": "true"},
                                            timeout=30).text
    return texts


def leaks(sas: str, texts: dict[str, str], host: Host) -> list[str]:
    """Where any spelling of the SAS signature shows: response texts, the host's log, the task hub files."""
    found = [f"{where}" for where, text in texts.items() for s in spellings(sas) if s in text]
    found += ["host log" for s in spellings(sas) if s in host.log()]
    hub_files = [p for p in host.data_dir.rglob("*") if p.is_file()]  # the SQLite database, its WAL and shm
    found += [str(p) for p in hub_files for s in spellings(sas) if s.encode() in p.read_bytes()]
    return found


@pytest.fixture(scope="module")
def store(hosts: Hosts):
    return open_store(hosts.connection_string, hosts.store_container)


@pytest.mark.parametrize("form", ["blobContainerUri", "connectionString"])
def test_a_sas_given_with_an_export_is_never_shown_in_clear(form: str, hosts: Hosts, store) -> None:
    host = hosts()
    destination = new_container(hosts.connection_string)
    sas = container_sas(destination.container_name)
    study, stored = put_study(store, 12, series_count=2)
    body = export_body([study, uid()], **destination_settings(form, destination, sas))

    operation = start(host, body)
    texts = {"202 response": json.dumps(operation)}
    running = everything_readable(host, operation["id"])  # while the WAL holds the newest state
    done = finished(operation["href"])
    texts.update({f"{k} (running)": v for k, v in running.items()})
    texts.update(everything_readable(host, operation["id"]))
    texts["errors.log"] = destination.download_blob(f"{operation['id']}/errors.log").readall().decode()

    assert (done["results"]["exported"], done["results"]["skipped"]) == (len(stored), 1)
    assert json.loads(texts["errors.log"].splitlines()[0])["identifier"]  # the log was written, and read
    assert leaks(sas, texts, host) == []
    key = host.env["Export__SecretKey"]  # the key that protects it is no more visible
    assert key not in host.log() and not any(key.encode() in p.read_bytes() for p in host.data_dir.rglob("*")
                                             if p.is_file())


def _refusals(conn: str) -> list[tuple[str, dict, str, str]]:
    """(case, destination settings carrying a SAS, words of the 400 message, the SAS)."""
    base = conn.split("BlobEndpoint=")[1].rstrip(";")
    closed = f"http://127.0.0.1:{free_port()}/{ACCOUNT}"
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    sas = container_sas(missing)
    forged = container_sas(missing, key=base64.b64encode(b"not the account key" * 4).decode())
    uri = f"{base}/{missing}?{sas}"
    return [
        ("a container that does not exist", {"blobContainerUri": uri}, "does not exist", sas),
        ("the same, in a connection string", {"connectionString": f"BlobEndpoint={base};SharedAccessSignature={sas}",
                                              "blobContainerName": missing}, "does not exist", sas),
        ("a signature the account rejects", {"blobContainerUri": f"{base}/{missing}?{forged}"}, "refused access",
         forged),
        ("unreachable storage", {"blobContainerUri": f"{closed}/{missing}?{sas}"}, "unreachable", sas),
        ("a container name Azure rejects", {"blobContainerUri": f"{base}/No_Such?{sas}"}, "container name", sas),
        ("managed identity with a SAS", {"blobContainerUri": uri, "useManagedIdentity": True}, "useManagedIdentity",
         sas),
        ("an unknown setting next to it", {"blobContainerUri": uri, "sas": sas}, "unknown property", sas),
    ]


def test_refusals_of_a_sas_bearing_request_never_quote_it(hosts: Hosts) -> None:
    host, strict = hosts(), hosts(Export__AllowSasTokens="false")
    cases = [(host, *case) for case in _refusals(hosts.connection_string)]
    first = _refusals(hosts.connection_string)[0]
    cases.append((strict, "SAS tokens refused by setting", first[1], "Export__AllowSasTokens", first[3]))
    problems = []
    for target, case, settings, words, sas in cases:
        r = requests.post(f"{target.base_url}/export", json=export_body(["1.2.3"], **settings), timeout=60)
        if r.status_code != 400 or words not in r.json().get("error", ""):
            problems.append(f"{case}: {r.status_code} {r.text[:300]}")
        problems += [f"{case}: {where}" for where in leaks(sas, {"response": r.text}, target)]
    assert problems == []


def test_a_failed_export_reports_why_without_the_sas(hosts: Hosts, store) -> None:
    host = hosts(Export__BatchSize="2", Export__MaxParallelBatches="1")
    destination = new_container(hosts.connection_string)
    sas = container_sas(destination.container_name)
    study, _ = put_study(store, 150, series_count=3)
    operation = start(host, export_body([study], **destination_settings("blobContainerUri", destination, sas)))
    wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, message="the first files")

    destination.delete_container()

    done = finished(operation["href"])
    assert done["status"] == "failed"
    assert "does not exist" in done["errors"][0]
    assert leaks(sas, everything_readable(host, operation["id"]), host) == []


def test_a_linkage_sas_is_protected_like_the_destinations(hosts: Hosts, store) -> None:
    """deidentification.linkage carries its own SAS: never in clear either, and its table reaches only its container."""
    host = hosts(Export__Deidentification__Key="linkage secrets test")
    destination, linkage = new_container(hosts.connection_string), new_container(hosts.connection_string)
    sas, linkage_sas = container_sas(destination.container_name), container_sas(linkage.container_name)
    study, stored = put_study(store, 3)  # random bytes: every file is skipped, and each still gets its row
    body = export_body([study], **destination_settings("blobContainerUri", destination, sas)) | {"deidentification": {
        "profile": "basic", "linkage": {"type": "azureBlob",
                                        "settings": destination_settings("connectionString", linkage, linkage_sas)}}}

    operation = start(host, body)
    texts = {"202 response": json.dumps(operation)}
    texts.update({f"{k} (running)": v for k, v in everything_readable(host, operation["id"]).items()})
    done = finished(operation["href"])
    texts.update(everything_readable(host, operation["id"]))
    texts["errors.log"] = destination.download_blob(f"{operation['id']}/errors.log").readall().decode()
    table = linkage.download_blob(f"{operation['id']}/linkage.csv").readall().decode()

    assert done["results"]["skipped"] == len(stored) == len(table.splitlines()) - 1
    assert all(name.split("/")[-1].removesuffix(".dcm") in table for name in stored)
    assert leaks(linkage_sas, texts | {"linkage.csv": table}, host) == [] and leaks(sas, texts, host) == []
    assert sorted(b.name for b in destination.list_blobs()) == [f"{operation['id']}/errors.log",
                                                                f"{operation['id']}/manifest-sha256.txt"]
