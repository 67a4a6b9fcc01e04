"""Exports from a real Orthanc through the local host: what lands is byte for byte what was stored."""

from __future__ import annotations

import pytest
import requests

from testkit.exporting import (
    error_log,
    export_body,
    export_host,
    finished,
    new_container,
    results,
    start,
    view,
)
from testkit.host import wait_for
from testkit.orthanc import PASSWORD, Orthanc

from .conftest import files_as_they_are, make_study, uid

# Retries that ride out a server restart of a few seconds: waits of 1, 2, 4 and 8 s.
PATIENT_RETRIES = {"Export__RetryOptions__MaxNumberOfAttempts": "5",
                   "Export__RetryOptions__FirstRetryIntervalSeconds": "1",
                   "Export__RetryOptions__BackoffCoefficient": "2"}


@pytest.fixture(scope="module")
def host(orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory, storage_connection_string: str):
    host = export_host(tmp_path_factory.mktemp("orthanc-export") / "hub", storage_connection_string, "unused",
                       **orthanc.app_settings()).start()
    yield host
    host.stop()


@pytest.fixture
def destination(storage_connection_string: str):
    return new_container(storage_connection_string)


def whole_store_body(destination, conn: str) -> dict:
    return {"destination": {"type": "azureblob", "settings": {"connectionString": conn,
                                                               "blobContainerName": destination.container_name}}}


def test_studies_series_instances_and_unknown_identifiers(orthanc, host, destination, storage_connection_string):
    study = make_study(series=2, instances=3)
    other = make_study(series=2, instances=2)
    as_they_are = files_as_they_are()
    orthanc.stow(*study.values(), *other.values(), *as_they_are.values())
    one_series = next(iter(other)).rsplit("/", 1)[0]
    one_instance = next(iter(as_they_are))[: -len(".dcm")]
    other_study = one_series.split("/")[0]
    unknown = [uid(), f"{other_study}/{uid()}", f"{other_study}/{uid()}/{uid()}"]

    operation = start(host, export_body([next(iter(study)).split("/")[0], one_series, one_instance, *unknown],
                                        destination, storage_connection_string))
    done = finished(operation["href"])

    expected = {**study, **{n: d for n, d in other.items() if n.startswith(one_series + "/")},
                f"{one_instance}.dcm": as_they_are[f"{one_instance}.dcm"]}
    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", 9, 3)
    assert results(destination, operation["id"]) == expected
    assert sorted(line["identifier"] for line in error_log(destination, operation["id"])) == sorted(unknown)


def test_the_whole_store_when_the_request_has_no_source(orthanc, host, destination, storage_connection_string):
    made = {**make_study(1, 3), **make_study(2, 2)}
    orthanc.stow(*made.values())
    stored = requests.get(f"{orthanc.url}/statistics", auth=orthanc.auth, timeout=30).json()["CountInstances"]

    operation = start(host, whole_store_body(destination, storage_connection_string))
    done = finished(operation["href"])

    exported = results(destination, operation["id"])
    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", stored, 0)
    assert len(exported) == stored and all(exported[name] == data for name, data in made.items())
    assert error_log(destination, operation["id"]) == []


def test_the_store_password_is_nowhere_the_export_writes_or_answers(orthanc, host, destination,
                                                                    storage_connection_string):
    orthanc.stow(*make_study(1, 2).values())
    operation = start(host, whole_store_body(destination, storage_connection_string))
    finished(operation["href"])
    answered = requests.get(f"{host.base_url}/runtime/webhooks/durabletask/instances/{operation['id']}",
                            params={"showInput": "true", "showHistory": "true"}, timeout=30).text
    hub = [p.read_bytes() for p in host.data_dir.rglob("*") if p.is_file()]
    log = destination.download_blob(f"{operation['id']}/errors.log").readall()
    assert PASSWORD not in answered and PASSWORD not in host.log() and PASSWORD.encode() not in log
    assert not any(PASSWORD.encode() in data for data in hub)


def test_the_built_in_stow_and_wado_routes_are_404_naming_the_setting(host):
    for method, path in (("POST", "studies"), ("GET", "studies/1.2/series/1.3/instances/1.4"),
                         ("DELETE", "v1/studies/1.2")):
        r = requests.request(method, f"{host.base_url}/{path}", timeout=30)
        assert r.status_code == 404 and "DicomStore__Type" in r.json()["error"], (path, r.text)


def test_wrong_credentials_fail_the_export_with_the_reason(orthanc, tmp_path, destination,
                                                           storage_connection_string):
    settings = {**orthanc.app_settings(), "DicomStore__Password": "wrong-password-7c1"}
    host = export_host(tmp_path / "hub", storage_connection_string, "unused", **settings).start()
    try:
        done = finished(start(host, export_body([uid()], destination, storage_connection_string))["href"])
        assert done["status"] == "failed"
        reason = " ".join(done["errors"])
        assert "answered 401" in reason and "DicomStore__Authentication" in reason
        assert "wrong-password-7c1" not in str(done) and "wrong-password-7c1" not in host.log()
    finally:
        host.stop()


def test_a_missing_setting_refuses_the_export_naming_it(tmp_path, destination, storage_connection_string):
    host = export_host(tmp_path / "hub", storage_connection_string, "unused", DicomStore__Type="dicomweb").start()
    try:
        r = requests.post(f"{host.base_url}/export", json=export_body(["1.2"], destination, storage_connection_string),
                          timeout=30)
        assert r.status_code == 500 and "DicomStore__DicomWebUrl" in r.json()["error"], r.text
    finally:
        host.stop()


def test_orthanc_killed_mid_export_and_restarted_is_ridden_out(tmp_path, destination, storage_connection_string):
    server = Orthanc(tmp_path / "orthanc").start()
    host = export_host(tmp_path / "hub", storage_connection_string, "unused", **server.app_settings(),
                       **PATIENT_RETRIES).start()
    try:
        made = make_study(series=4, instances=50)
        server.stow(*made.values())
        operation = start(host, export_body([next(iter(made)).split("/")[0]], destination, storage_connection_string))
        wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, timeout=60, interval=0.02,
                 message="the first copies")
        server.kill()
        assert view(operation["href"])["status"] == "running"
        server.start()
        done = finished(operation["href"], timeout=180)
        assert (done["status"], done["results"]["exported"]) == ("completed", len(made)), done
        assert results(destination, operation["id"]) == made
    finally:
        host.stop()
        server.stop()
