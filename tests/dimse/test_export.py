"""Exports from a real PACS (Orthanc's DICOM port) through the local host, over C-FIND and C-GET."""

from __future__ import annotations

import io
import threading
import time

import pydicom
import pytest

from testkit.exporting import (
    error_log,
    export_body,
    export_host,
    finished,
    manifest,
    manifest_of,
    new_container,
    results,
    start,
)
from testkit.host import wait_for
from testkit.orthanc import Orthanc
from testkit.seed import uid
from tests.orthanc.conftest import make_study
from tests.orthanc.test_export import (
    assert_refused_naming,
    export_the_whole_store,
    export_through_a_restart,
    store_a_mix,
)

from .conftest import (
    assert_as_stored,
    dataset_digest,
    pacs_connections,
    stow_file,
    tree_rss,
    write_large_instance,
)

DEID_KEY = "a test key for the dimse export"


@pytest.fixture(scope="module")
def host(orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory, storage_connection_string: str):
    host = export_host(tmp_path_factory.mktemp("dimse-export") / "hub", storage_connection_string, "unused",
                       **orthanc.dimse_settings(), DicomStore__MaxAssociations="3",
                       Export__Deidentification__Key=DEID_KEY).start()
    yield host
    host.stop()


@pytest.fixture
def destination(storage_connection_string: str):
    return new_container(storage_connection_string)


def test_studies_series_instances_and_unknown_identifiers(orthanc, host, destination, storage_connection_string):
    stored = store_a_mix(orthanc)
    instances = [name[: -len(".dcm")] for name in stored.as_they_are]
    unknown = stored.unknown

    operation = start(host, export_body([next(iter(stored.study)).split("/")[0], stored.series_uid, *instances,
                                         *unknown], destination, storage_connection_string))
    done = finished(operation["href"])

    expected = {**stored.study, **stored.series, **stored.as_they_are}
    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == (
        "completed", len(expected), 3), done
    exported = results(destination, operation["id"])
    assert sorted(exported) == sorted(expected)
    for name, data in expected.items():
        assert_as_stored(exported[name], data, name)
    assert manifest(destination, operation["id"]) and sorted(manifest(destination, operation["id"])) == manifest_of(
        exported)
    assert sorted(line["identifier"] for line in error_log(destination, operation["id"])) == sorted(unknown)
    for name in exported:  # every blob carries its Content-MD5
        assert destination.get_blob_client(f"{operation['id']}/results/{name}").get_blob_properties() \
            .content_settings.content_md5
    wait_for(lambda: pacs_connections(orthanc, host.process.pid) == 0, timeout=30, interval=0.1,
             message="the host to release its associations")


def test_the_whole_store_when_the_request_has_no_source(orthanc, host, destination, storage_connection_string):
    export_the_whole_store(orthanc, host, destination, storage_connection_string)  # DCMTK re-encodes some: names only


def test_a_de_identified_export_from_the_pacs_leaves_no_original_uid(orthanc, host, destination,
                                                                    storage_connection_string):
    made = make_study(series=2, instances=2)
    orthanc.stow(*made.values())
    body = export_body([next(iter(made)).split("/")[0]], destination, storage_connection_string)
    body["deidentification"] = {"profile": "basic"}

    operation = start(host, body)
    done = finished(operation["href"])

    written = results(destination, operation["id"])
    originals = {uid for name in made for uid in name[:-4].split("/")}
    assert (done["status"], done["results"]["exported"], len(written)) == ("completed", len(made), len(made))
    assert not any(uid.encode() in data for uid in originals for data in written.values())
    assert all(pydicom.dcmread(io.BytesIO(data)).PatientIdentityRemoved == "YES" for data in written.values())


def test_a_refused_association_fails_the_export_with_a_reason_naming_it(orthanc, tmp_path, destination,
                                                                      storage_connection_string):
    settings = {**orthanc.dimse_settings(), "DicomStore__CalledAETitle": "NOT-THE-PACS"}
    host = export_host(tmp_path / "hub", storage_connection_string, "unused", **settings).start()
    try:
        done = finished(start(host, export_body([uid()], destination, storage_connection_string))["href"])
        reason = " ".join(done["errors"])
        assert done["status"] == "failed" and "refused the association" in reason, done
        assert "NOT-THE-PACS" in reason and "DicomStore__CalledAETitle" in reason
    finally:
        host.stop()


def test_a_missing_setting_refuses_the_export_naming_it(tmp_path, destination, storage_connection_string):
    assert_refused_naming(tmp_path, destination, storage_connection_string, "DicomStore__CalledAETitle",
                          DicomStore__Type="dimse", DicomStore__Host="127.0.0.1", DicomStore__Port="104")


def test_the_pacs_killed_mid_export_and_restarted_is_ridden_out(tmp_path, destination, storage_connection_string):
    made, exported = export_through_a_restart(tmp_path, destination, storage_connection_string,
                                              Orthanc.dimse_settings)
    assert sorted(exported) == sorted(made)
    for name, data in made.items():
        assert_as_stored(exported[name], data, name)


def test_a_large_multi_frame_instance_is_copied_with_bounded_memory(orthanc, host, destination, tmp_path,
                                                                   storage_connection_string):
    """300 MiB through the host: its memory grows by far less than the instance (the target: 150 MiB above idle
    for 1 GiB, bench/); the file arrives whole, its dataset byte for byte."""
    study, series, sop = uid(), uid(), uid()
    path = tmp_path / "large.dcm"
    size = write_large_instance(path, 150, study, series, sop)
    stow_file(orthanc, path)
    idle = tree_rss(host.process.pid)
    peak, done_event = [idle], threading.Event()

    def sample() -> None:
        while not done_event.is_set():
            peak.append(tree_rss(host.process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        operation = start(host, export_body([study], destination, storage_connection_string))
        done = finished(operation["href"], timeout=600)
    finally:
        done_event.set()
        sampler.join()
    assert (done["status"], done["results"]["exported"]) == ("completed", 1), done
    blob = destination.get_blob_client(f"{operation['id']}/results/{study}/{series}/{sop}.dcm")
    with path.open("rb") as original:
        expected = dataset_digest(iter(lambda: original.read(4 * 1024 * 1024), b""))
    assert dataset_digest(blob.download_blob().chunks()) == expected
    assert blob.get_blob_properties().size >= size - 200  # the same dataset under another File Meta
    grown = max(peak) - idle
    assert grown < 150 * 1024 * 1024, f"the host grew by {grown / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB instance"
