"""Exports from a real Orthanc through the local host: what lands is byte for byte what was stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

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


class Stored(NamedTuple):
    """What `store_a_mix` stored, and identifiers to ask for: `unknown` ones under a study and series it holds."""

    study: dict[str, bytes]  # a whole study
    series: dict[str, bytes]  # one series of another study
    series_uid: str  # `<study>/<series>` of that one
    as_they_are: dict[str, bytes]  # pydicom's own files
    unknown: list[str]


def store_a_mix(orthanc: Orthanc) -> Stored:
    """A study of 2 × 3 CT files, another of 2 × 2, and pydicom's files as they are, stored in `orthanc`."""
    study, other, as_they_are = make_study(series=2, instances=3), make_study(series=2, instances=2), files_as_they_are()
    orthanc.stow(*study.values(), *other.values(), *as_they_are.values())
    one_series = next(iter(other)).rsplit("/", 1)[0]
    other_study = one_series.split("/")[0]
    return Stored(study, {n: d for n, d in other.items() if n.startswith(one_series + "/")}, one_series, as_they_are,
                  [uid(), f"{other_study}/{uid()}", f"{other_study}/{uid()}/{uid()}"])


def test_studies_series_instances_and_unknown_identifiers(orthanc, host, destination, storage_connection_string):
    stored = store_a_mix(orthanc)
    one_instance = next(iter(stored.as_they_are))[: -len(".dcm")]
    unknown = stored.unknown

    operation = start(host, export_body([next(iter(stored.study)).split("/")[0], stored.series_uid, one_instance,
                                         *unknown], destination, storage_connection_string))
    done = finished(operation["href"])

    expected = {**stored.study, **stored.series, f"{one_instance}.dcm": stored.as_they_are[f"{one_instance}.dcm"]}
    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", 9, 3)
    assert results(destination, operation["id"]) == expected
    assert sorted(line["identifier"] for line in error_log(destination, operation["id"])) == sorted(unknown)


def test_the_whole_store_when_the_request_has_no_source(orthanc, host, destination, storage_connection_string):
    made, exported = export_the_whole_store(orthanc, host, destination, storage_connection_string)
    assert all(exported[name] == data for name, data in made.items())


def export_the_whole_store(orthanc: Orthanc, host, destination, conn: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Store two more studies in the session's Orthanc and export the whole store without a source: every instance
    Orthanc holds is exported, nothing skipped or logged. What was stored, and what was exported (path → bytes)."""
    made = {**make_study(1, 3), **make_study(2, 2)}
    orthanc.stow(*made.values())
    stored = requests.get(f"{orthanc.url}/statistics", auth=orthanc.auth, timeout=30).json()["CountInstances"]

    operation = start(host, whole_store_body(destination, conn))
    done = finished(operation["href"])

    exported = results(destination, operation["id"])
    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", stored, 0)
    assert len(exported) == stored and set(made) <= set(exported)
    assert error_log(destination, operation["id"]) == []
    return made, exported


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


def test_a_partition_export_on_a_store_without_partitions_is_a_400_naming_its_type(host, storage_connection_string):
    body = export_body(["1.2"], None, None, connectionString=storage_connection_string, blobContainerName="unused")
    r = requests.post(f"{host.base_url}/v2/partitions/a/export", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert "dicomweb (DicomStore__Type=dicomweb without setting DicomStore__DataPartitions=true)" in r.json()["error"]


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
    assert_refused_naming(tmp_path, destination, storage_connection_string, "DicomStore__DicomWebUrl",
                          DicomStore__Type="dicomweb")


def assert_refused_naming(tmp_path, destination, conn: str, missing: str, **settings: str) -> None:
    """A host with the store's `settings` (one setting `missing`) answers POST /export with a 500 naming it."""
    host = export_host(tmp_path / "hub", conn, "unused", **settings).start()
    try:
        r = requests.post(f"{host.base_url}/export", json=export_body(["1.2"], destination, conn), timeout=30)
        assert r.status_code == 500 and missing in r.json()["error"], r.text
    finally:
        host.stop()


def test_orthanc_killed_mid_export_and_restarted_is_ridden_out(tmp_path, destination, storage_connection_string):
    made, exported = export_through_a_restart(tmp_path, destination, storage_connection_string, Orthanc.app_settings)
    assert exported == made


def export_through_a_restart(tmp_path, destination, conn: str,
                             settings: Callable[[Orthanc], dict[str, str]]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Export a study of 200 instances from an Orthanc that is killed after the first copies and restarted; the
    export must complete with every file. What was stored, and what was exported (path → bytes)."""
    server = Orthanc(tmp_path / "orthanc").start()
    host = export_host(tmp_path / "hub", conn, "unused", **settings(server), **PATIENT_RETRIES).start()
    try:
        made = make_study(series=4, instances=50)
        server.stow(*made.values())
        operation = start(host, export_body([next(iter(made)).split("/")[0]], destination, conn))
        wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, timeout=60, interval=0.02,
                 message="the first copies")
        server.kill()
        assert view(operation["href"])["status"] == "running"
        server.start()
        done = finished(operation["href"], timeout=180)
        assert (done["status"], done["results"]["exported"]) == ("completed", len(made)), done
        return made, results(destination, operation["id"])
    finally:
        host.stop()
        server.stop()
