"""The linkage table (deidentification.linkage): the request, and the steps against Azurite.

One row per instance in the controller's container, none twice after a retried batch, nothing of it
in the research destination; its credentials protected like the destination's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest

from shared.errors import ClientError
from shared.export import steps as export_steps
from shared.export.destination import Destination, DestinationRefused, parse_destination
from shared.export.linkage import COLUMNS
from shared.export.request import parse_export_request
from shared.export.settings import ExportSettings
from testkit.corpus import UID_ROOT, identifying_instance

from .conftest import POLICY, _tag, created_container

OPERATION = "0123456789abcdef0123456789abcdef"
SAS = "sv=2024-01-01&sp=racwl&sig=linkage-secret-signature"


def request(destination: dict, linkage: dict | None, **deid: object) -> bytes:
    deidentification = {"profile": "basic", **deid} | ({"linkage": linkage} if linkage is not None else {})
    return json.dumps({"source": {"type": "identifiers", "settings": {"values": ["1.2"]}},
                       "destination": destination, "deidentification": deidentification}).encode()


def blob(settings: dict) -> dict:
    return {"type": "azureBlob", "settings": settings}


@pytest.fixture
def linkage(storage_connection_string: str) -> Iterator[Destination]:
    """The controller's container: another one of the same account."""
    yield from created_container(storage_connection_string, "link")


def test_a_linkage_in_the_destinations_own_container_is_refused():
    same = blob({"blobContainerUri": f"https://acct.blob.core.windows.net/research?{SAS}"})
    other_credential = blob({"blobContainerUri": "https://ACCT.blob.core.windows.net/research", "useManagedIdentity": True})
    with pytest.raises(ClientError) as refused:
        parse_export_request(request(same, other_credential), "application/json", POLICY)
    assert refused.value.status == 400 and refused.value.field == "deidentification.linkage"
    assert "another container" in str(refused.value)


def test_a_linkage_in_another_container_of_the_same_account_is_accepted():
    research = blob({"blobContainerUri": f"https://acct.blob.core.windows.net/research?{SAS}"})
    controller = blob({"blobContainerUri": f"https://acct.blob.core.windows.net/controller?{SAS}x"})
    parsed = parse_export_request(request(research, controller), "application/json", POLICY)
    assert parsed.linkage is not None and parsed.linkage.container == "controller"
    assert parsed.linkage.sas == SAS + "x" and parsed.destination.sas == SAS
    assert parsed.canonical() != parse_export_request(request(research, None), "application/json", POLICY).canonical()


@pytest.mark.parametrize(("linkage", "field"), [
    ({"type": "azureBlob", "settings": {"blobContainerUri": "https://evil.example.com/c?sig=x"}},
     "deidentification.linkage.settings.blobContainerUri"),
    ({"type": "s3", "settings": {}}, "deidentification.linkage.type"),
    ({"type": "azureBlob", "settings": {"connectionString": "AccountName=a;SharedAccessSignature=sig=1"}},
     "deidentification.linkage.settings.blobContainerName"),
    ({"type": "azureBlob", "settings": {"blobContainerUri": "https://a.blob.core.windows.net/c", "x": 1}},
     "deidentification.linkage.settings"),
    ("a string", "deidentification.linkage"),
])
def test_a_bad_linkage_is_a_400_naming_its_field(linkage, field):
    research = blob({"blobContainerUri": f"https://acct.blob.core.windows.net/research?{SAS}"})
    with pytest.raises(ClientError) as refused:
        parse_export_request(request(research, linkage), "application/json", POLICY)
    assert refused.value.status == 400 and refused.value.field.startswith(field), (refused.value.field, str(refused.value))
    assert "deidentification.linkage" in str(refused.value) and "destination.settings" not in str(refused.value)


def test_a_linkage_without_deidentification_is_a_400():
    research = blob({"blobContainerUri": f"https://acct.blob.core.windows.net/research?{SAS}"})
    document = json.loads(request(research, blob({"blobContainerUri": f"https://acct.blob.core.windows.net/c?{SAS}"})))
    del document["deidentification"]["profile"]
    with pytest.raises(ClientError) as refused:
        parse_export_request(json.dumps(document).encode(), "application/json", POLICY)
    assert refused.value.field == "deidentification.profile" and "linkage" in str(refused.value)


def _export_request(destination: Destination, linkage: Destination | None, connection_string: str, studies: list[str]):
    def settings(container: str) -> dict:
        return blob({"connectionString": connection_string, "blobContainerName": container})

    body = json.dumps({"source": {"type": "identifiers", "settings": {"values": studies}},
                       "destination": settings(destination.container),
                       "deidentification": {"profile": "basic", "options": ["cleanDescriptors"],
                                            **({"linkage": settings(linkage.container)} if linkage else {})}})
    return parse_export_request(body.encode(), "application/json", POLICY)


def test_prepare_refuses_a_missing_linkage_container_naming_it(destination, storage_connection_string):
    missing = parse_destination(POLICY, connection_string=storage_connection_string, container_name=f"gone-{_tag()}")
    with pytest.raises(DestinationRefused) as refused:
        export_steps.prepare(_export_request(destination, missing, storage_connection_string, ["1.2"]), OPERATION,
                             POLICY)
    assert refused.value.field == "deidentification.linkage" and "does not exist" in str(refused.value)


def test_rows_for_every_instance_once_in_the_linkage_and_nothing_original_in_the_research_container(
        store, destination, linkage, storage_connection_string, monkeypatch):
    monkeypatch.setenv("Export__Deidentification__Key", "linkage test key")
    monkeypatch.setenv("Export__BatchSize", "2")
    files = [identifying_instance(p, f"{UID_ROOT}.{p}.1", f"{UID_ROOT}.{p}.1.1", f"{UID_ROOT}.{p}.1.1.{n}",
                                  StudyDescription=f"CT CHEST for Jane Doe MRN1234{p}")
             for p in (1, 2) for n in (1, 2)]
    burned = identifying_instance(3, f"{UID_ROOT}.3.1", f"{UID_ROOT}.3.1.1", f"{UID_ROOT}.3.1.1.1",
                                  BurnedInAnnotation="YES")
    for f in [*files, burned]:
        store.put(f.study, f.series, f.sop, io.BytesIO(f.data), len(f.data))
    studies = sorted({f.study for f in [*files, burned]})
    checkpoint = export_steps.prepare(_export_request(destination, linkage, storage_connection_string, studies),
                                      OPERATION, ExportSettings.from_settings())
    assert linkage.account_key not in json.dumps(checkpoint.to_json())  # protected, as the destination's

    expansion = export_steps.expand_step(checkpoint.expand_input(), store)
    work = [checkpoint.copy_input(batch, n) for n, batch in enumerate(expansion.batches)]
    for item in work + work[:2]:  # the first two batches retried: their rows replace their own
        export_steps.copy_step(item, store)
    export_steps.commit_step(checkpoint.advance(expansion, []).commit_input())

    rows = list(csv.reader(io.StringIO(linkage.container_client().download_blob(
        f"{OPERATION}/linkage.csv").readall().decode())))
    assert tuple(rows[0]) == COLUMNS
    by_sop = {row[5]: dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]}
    assert len(rows) - 1 == len(by_sop) == 5
    for f in files:
        row = by_sop[f.sop]
        assert (row["status"], row["originalStudyInstanceUID"], row["originalPatientID"]) == ("exported", f.study,
                                                                                            f"P{f.study[-3]}PID")
        assert row["patientID"].startswith("ANON") and row["sopInstanceUID"].startswith("2.25.")
    skipped = by_sop[burned.sop]
    assert skipped["status"] == "skipped" and "BurnedInAnnotation" in skipped["reason"]
    assert skipped["originalPatientID"] == "P3PID"

    research = destination.container_client()
    written = {b.name: research.download_blob(b.name).readall() for b in research.list_blobs()}
    errors = [json.loads(line) for line in written[f"{OPERATION}/errors.log"].decode().splitlines()]
    assert [e["identifier"] for e in errors] == ["/".join(skipped[k] for k in COLUMNS[7:])]  # the controller's key
    forbidden = {v.encode() for f in [*files, burned] for v in (f.study, f.series, f.sop, f"P{f.study[-3]}PID")}
    forbidden |= {b"Jane", b"Doe", b"MRN1234"}
    assert not [(name, v) for name, data in written.items() for v in forbidden if v in data]
    assert not [name for name in written if "linkage" in name]
    for row in by_sop.values():
        if row["status"] == "exported":
            path = f"{OPERATION}/results/{row['studyInstanceUID']}/{row['seriesInstanceUID']}/{row['sopInstanceUID']}.dcm"
            assert path in written


def test_a_failed_export_commits_the_rows_of_its_completed_generations_only(store, destination, linkage,
                                                                             storage_connection_string, monkeypatch):
    monkeypatch.setenv("Export__Deidentification__Key", "linkage test key")
    f = identifying_instance(1, f"{UID_ROOT}.1.1", f"{UID_ROOT}.1.1.1", f"{UID_ROOT}.1.1.1.1")
    store.put(f.study, f.series, f.sop, io.BytesIO(f.data), len(f.data))
    checkpoint = export_steps.prepare(_export_request(destination, linkage, storage_connection_string, [f.study]),
                                      OPERATION, ExportSettings.from_settings())
    expansion = export_steps.expand_step(checkpoint.expand_input(), store)
    export_steps.copy_step(checkpoint.copy_input(expansion.batches[0], 0), store)
    export_steps.commit_step(checkpoint.commit_input(failed=True))  # generation 1 did not complete
    text = linkage.container_client().download_blob(f"{OPERATION}/linkage.csv").readall().decode()
    assert text.splitlines() == [",".join(COLUMNS)]
    export_steps.copy_step(checkpoint.copy_input(expansion.batches[0], 0), store)  # a retry copies it again
    export_steps.commit_step(checkpoint.advance(expansion, []).commit_input())
    text = linkage.container_client().download_blob(f"{OPERATION}/linkage.csv").readall().decode()
    assert len(text.splitlines()) == 2 and f.sop in text.splitlines()[1]
