"""De-identified exports end to end: real HTTP to the local host, Azurite as store and destination.

The store holds the identifying corpus (testkit/corpus.py: two patients, two studies each, two
series each), pydicom's own files, one instance with burned-in annotation and one that is not
DICOM. After the export the raw bytes of every blob of the operation are searched.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import warnings

import pydicom
import pytest
import requests
from azure.storage.blob import ContainerClient

from shared.deid.dataset import Deidentifier, NotDeidentified
from shared.deid.profile import Profile
from shared.deid.pseudonyms import Pseudonyms
from shared.deid.stream import deidentify_file
from shared.stores.blob.store import DicomStore
from shared.uids import Identifier, is_uid
from testkit.corpus import UID_ROOT, corpus, identifying_instance
from testkit.exporting import error_log, export_body, finished, host_fixtures, new_container, start

KEY, OTHER_KEY = "the first de-identification key", "another key"
DEID = {"profile": "basic"}


hosts, store, destination = host_fixtures("deid-hosts")


def _pydicom_files() -> list[tuple[Identifier, bytes]]:
    """pydicom's test files with valid, distinct UIDs, as a store holds them."""
    found, seen = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(glob.glob(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "*.dcm"))):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                parts = tuple(str(ds.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
            except Exception:  # noqa: BLE001, S112 - not a file a store would hold
                continue
            if all(map(is_uid, parts)) and parts[2] not in seen:
                seen.add(parts[2])
                found.append((Identifier(*parts), open(path, "rb").read()))  # noqa: SIM115
    return found


@pytest.fixture(scope="module")
def seeded(store: DicomStore) -> dict:
    """What the store holds: identifiers to export, and what must never reach the destination."""
    files = corpus(patients=2, studies=2, series=2, instances=2)
    burned = identifying_instance(7, f"{UID_ROOT}.7.1.1", f"{UID_ROOT}.7.1.1.1", f"{UID_ROOT}.7.1.1.1.1",
                                  BurnedInAnnotation="YES")
    forbidden = set().union(*(f.forbidden for f in files + [burned]))
    for f in files + [burned]:
        store.put(f.study, f.series, f.sop, io.BytesIO(f.data), len(f.data))
    not_dicom = Identifier(f"{UID_ROOT}.8.1.1", f"{UID_ROOT}.8.1.1.1", f"{UID_ROOT}.8.1.1.1.1")
    junk = os.urandom(4000)
    store.put(*not_dicom.parts, io.BytesIO(junk), len(junk))
    forbidden |= {uid.encode() for uid in not_dicom.parts}
    refused = {burned.sop, not_dicom.instance}
    for identifier, data in _pydicom_files():
        store.put(*identifier.parts, io.BytesIO(data), len(data))
        forbidden |= {uid.encode() for uid in identifier.parts}
        try:
            b"".join(deidentify_file([data], Deidentifier(Profile(), Pseudonyms(KEY.encode()))).chunks)
        except NotDeidentified:
            refused.add(identifier.instance)
    studies = sorted({f.study for f in files} | {burned.study, not_dicom.study}
                     | {i.study for i, _ in _pydicom_files()})
    return {"studies": studies, "forbidden": forbidden, "refused": refused, "corpus": files,
            "burned": burned, "not_dicom": not_dicom}


def export(host, destination, conn, values, deidentification=DEID) -> tuple[str, dict]:
    operation = start(host, export_body(values, destination, conn) | {"deidentification": deidentification})
    return operation["id"], finished(operation["href"], timeout=300)


def blobs(destination: ContainerClient, operation_id: str) -> dict[str, bytes]:
    return {b.name: destination.download_blob(b.name).readall()
            for b in destination.list_blobs(name_starts_with=f"{operation_id}/")}


def test_nothing_identifying_reaches_the_destination(hosts, seeded, destination, storage_connection_string):
    host = hosts(Export__Deidentification__Key=KEY)
    missing = f"{UID_ROOT}.9.9"
    operation_id, done = export(host, destination, storage_connection_string, [*seeded["studies"], missing])

    written = blobs(destination, operation_id)
    results = {name: data for name, data in written.items() if "/results/" in name}
    assert done["status"] == "completed"
    assert done["results"]["exported"] == len(results)
    assert done["results"]["skipped"] == len(seeded["refused"]) + 1
    leaks = sorted({value for value in seeded["forbidden"] for data in written.values() if value in data})
    assert leaks == []
    sops = set()
    for name, data in results.items():  # every file parses, at the path of its new UIDs, with the markers
        ds = pydicom.dcmread(io.BytesIO(data))
        assert name == f"{operation_id}/results/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
        assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert all(is_uid(uid) for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID))
        sops.add(ds.SOPInstanceUID)
    pseudonyms = Pseudonyms(KEY.encode())
    corpus_studies = {pseudonyms.uid(f.study) for f in seeded["corpus"]}
    for data in results.values():
        ds = pydicom.dcmread(io.BytesIO(data))
        if ds.StudyInstanceUID in corpus_studies:
            assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID in sops  # references resolve
    lines = {line["identifier"]: line["error"] for line in error_log(destination, operation_id)}
    burned = seeded["burned"]
    assert "BurnedInAnnotation is YES" in lines[str(pseudonyms.identifier(Identifier(burned.study, burned.series,
                                                                                         burned.sop)))]
    assert "cannot be parsed" in lines[str(pseudonyms.identifier(seeded["not_dicom"]))]
    assert "no instance" in lines[str(pseudonyms.identifier(Identifier(missing)))]


def test_the_same_key_gives_the_same_pseudonyms_and_another_key_others(hosts, seeded, storage_connection_string):
    studies = sorted({f.study for f in seeded["corpus"]})

    def paths(key: str) -> set[str]:
        destination = new_container(storage_connection_string)
        operation_id, done = export(hosts(Export__Deidentification__Key=key), destination,
                                    storage_connection_string, studies)
        assert done["status"] == "completed"
        return {b.name.split("/", 1)[1] for b in destination.list_blobs(name_starts_with=f"{operation_id}/results/")}

    first, again, other = paths(KEY), paths(KEY), paths(OTHER_KEY)
    assert first == again and len(first) == len(seeded["corpus"])
    assert not {p.split("/")[1] for p in first} & {p.split("/")[1] for p in other}  # no study UID in common


def test_options_reach_the_files(hosts, seeded, destination, storage_connection_string):
    f = seeded["corpus"][0]
    deid = {"Profile": "Basic", "Options": ["retainUids", "RETAINPATIENTCHARACTERISTICS"]}
    operation_id, done = export(hosts(Export__Deidentification__Key=KEY), destination, storage_connection_string,
                                [f"{f.study}/{f.series}/{f.sop}"], deid)
    assert done["results"]["exported"] == 1
    (name, data), = ((n, d) for n, d in blobs(destination, operation_id).items() if "/results/" in n)
    assert name == f"{operation_id}/results/{f.study}/{f.series}/{f.sop}.dcm"  # UIDs retained, so is the path
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.PatientAge == "045Y" and [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == [
        "113100", "113108", "113110"]


def test_a_bad_deidentification_is_refused_before_anything_is_written(hosts, destination, storage_connection_string):
    host = hosts(Export__Deidentification__Key=KEY)
    body = export_body(["1.2.3"], destination, storage_connection_string) | {
        "deidentification": {"profile": "basic", "options": ["retainEverything"]}}
    r = requests.post(f"{host.base_url}/export", json=body, timeout=60)
    assert r.status_code == 400 and r.json()["error"].startswith("deidentification.options[0]")
    assert list(destination.list_blobs()) == []


def test_the_linkage_table_goes_to_the_controller_and_nothing_original_to_the_researchers(
        hosts, seeded, storage_connection_string):
    conn = storage_connection_string
    research, controller = new_container(conn), new_container(conn)
    deid = {"profile": "basic", "options": ["cleanDescriptors"],
            "linkage": {"type": "azureBlob", "settings": {"connectionString": conn,
                                                          "blobContainerName": controller.container_name}}}
    operation_id, done = export(hosts(Export__Deidentification__Key=KEY), research, conn, seeded["studies"], deid)

    assert done["status"] == "completed"
    written = blobs(research, operation_id)
    assert sorted({value for value in seeded["forbidden"] for data in written.values() if value in data}) == []
    rows = list(csv.DictReader(io.StringIO(controller.download_blob(f"{operation_id}/linkage.csv").readall().decode())))
    assert len(rows) == done["results"]["exported"] + done["results"]["skipped"]
    by_sop = {row["originalSOPInstanceUID"]: row for row in rows}
    for f in seeded["corpus"]:
        row = by_sop[f.sop]
        assert row["status"] == "exported" and row["originalPatientID"].encode() in f.forbidden
        assert f"{operation_id}/results/{row['studyInstanceUID']}/{row['seriesInstanceUID']}/{row['sopInstanceUID']}.dcm" \
            in written
    burned = by_sop[seeded["burned"].sop]
    errors = {line["identifier"]: line["error"] for line in error_log(research, operation_id)}
    key = "/".join((burned["studyInstanceUID"], burned["seriesInstanceUID"], burned["sopInstanceUID"]))
    assert burned["status"] == "skipped" and "BurnedInAnnotation" in errors[key] and burned["originalPatientID"]
