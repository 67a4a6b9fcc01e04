"""STOW-RS in shared/stores/blob/stow.py against Azurite: splitting bodies, checking parts, storing, the response."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceNotFoundError
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from shared.errors import ClientError
from shared.stores.blob import stow
from shared.stores.blob.store import DicomStore, blob_name
from shared.uids import Identifier
from testkit.instances import OMIT, encode, make_dataset, make_instance, multipart, stow_content_type

BASE = "https://dicom.example/v1"


def stored_names(store: DicomStore, study: str) -> list[str]:
    try:
        return [found.blob_name for found in store.iter_instances(Identifier(study))]
    except ResourceNotFoundError:  # no container: nothing stored
        return []


def post(store, body: bytes, study: str | None = None, content_type: str | None = None) -> stow.StowResult:
    return stow.store_request(store, body, content_type or stow_content_type(), BASE, study)


def failures(result: stow.StowResult) -> list[tuple[int, str]]:
    items = result.dataset.get("00081198", {}).get("Value", [])
    return [(item["00081197"]["Value"][0], item["00000902"]["Value"][0]) for item in items]


def test_all_stored_unchanged_with_retrieve_urls(store):
    study, series = generate_uid(), generate_uid()
    sops = [generate_uid() for _ in range(5)]
    instances = [make_instance(study=study, series=series, sop=sop) for sop in sops]
    result = post(store, multipart(*instances), study)
    assert result.status == 200
    assert result.dataset["00081190"] == {"vr": "UR", "Value": [f"{BASE}/studies/{study}"]}
    referenced = result.dataset["00081199"]["Value"]
    assert [item["00081155"]["Value"][0] for item in referenced] == sops
    assert referenced[0]["00081150"]["Value"] == ["1.2.840.10008.5.1.4.1.1.7"]
    assert referenced[0]["00081190"]["Value"] == [f"{BASE}/studies/{study}/series/{series}/instances/{sops[0]}"]
    assert "00081198" not in result.dataset
    for sop, data in zip(sops, instances):
        assert b"".join(store.download(blob_name(study, series, sop)).chunks()) == data


def test_some_failed_is_202_with_both_sequences(store):
    good, bad_sop = make_instance(), generate_uid()
    result = post(store, multipart(good, make_instance(sop=bad_sop, SeriesInstanceUID="1.2.abc")))
    assert result.status == 202
    assert len(result.dataset["00081199"]["Value"]) == 1
    [item] = result.dataset["00081198"]["Value"]
    assert item["00081155"]["Value"] == [bad_sop]
    assert failures(result) == [(0xA900, "part 2: Series Instance UID (0020,000E) is not a valid UID")]


@pytest.mark.parametrize(
    "part, failure, reason",
    [
        (b"this is not DICOM at all", 0xC000, "not a DICOM Part 10 file"),
        (make_instance(StudyInstanceUID=OMIT), 0xA900, "missing Study Instance UID (0020,000D)"),
        (make_instance(SOPClassUID=OMIT), 0xA900, "missing SOP Class UID (0008,0016)"),
        (make_instance(SOPInstanceUID=""), 0xA900, "missing SOP Instance UID (0008,0018)"),
        (make_instance(SeriesInstanceUID=OMIT), 0xA900, "missing Series Instance UID (0020,000E)"),
        (make_instance(StudyInstanceUID="1.2.3a"), 0xA900, "Study Instance UID (0020,000D) is not a valid UID"),
        (make_instance(SOPInstanceUID="1.2..3"), 0xA900, "SOP Instance UID (0008,0018) is not a valid UID"),
        (make_instance(pixel_bytes=1000)[:-200], 0xC000, "truncated"),
        (make_instance()[:400], 0xC000, "truncated: (0008,0018) runs past the end of the part"),
        (b"\0" * 128 + b"DICM\x02\x00\x10\x00ZZ\x04\x001.2\0", 0xC000, "unreadable DICOM: Unknown Value"),
    ],
    ids=["not-dicom", "no-study", "no-class", "empty-sop", "no-series", "letters", "empty-component",
         "truncated-pixels", "truncated-header",
         "garbage-meta"],
)
def test_a_bad_part_fails_alone_with_its_reason(store, part, failure, reason):
    result = post(store, multipart(part))
    assert result.status == 409
    [(code, comment)] = failures(result)
    assert code == failure
    assert comment.startswith("part 1: ") and reason in comment
    assert len(comment) <= 64  # Error Comment is LO
    assert "00081199" not in result.dataset


def test_study_mismatch_fails_that_part_only(store):
    study = generate_uid()
    result = post(store, multipart(make_instance(study=study), make_instance()), study)
    assert result.status == 202
    assert failures(result) == [(0xA900, "part 2: Study Instance UID is not the study in the URL")]
    assert result.dataset["00081190"]["Value"] == [f"{BASE}/studies/{study}"]


def test_all_failed_stores_nothing_and_is_409(store):
    study = generate_uid()
    result = post(store, multipart(make_instance(), make_instance()), study)
    assert result.status == 409
    assert [code for code, _ in failures(result)] == [0xA900, 0xA900]
    assert stored_names(store, study) == []


def test_a_part_of_another_media_type_fails(store):
    result = post(store, multipart(make_instance(), content_type="application/dicom+json"))
    assert failures(result) == [(0xC000, "part 1: part is application/dicom+json, not application/dicom")]


def test_storage_failure_is_0110_per_part(storage_connection_string):
    unreachable = storage_connection_string.replace(
        storage_connection_string.split("BlobEndpoint=")[1].split(";")[0], "http://127.0.0.1:9/devstoreaccount1"
    )
    store = DicomStore.from_settings({"AzureWebJobsStorage": unreachable}, retry_total=0)
    result = post(store, multipart(make_instance()))
    assert result.status == 409
    [(code, comment)] = failures(result)
    assert code == 0x0110 and comment.startswith("part 1: storing failed")


@pytest.mark.parametrize(
    "content_type, status, message",
    [
        ("application/dicom", 415, "must be multipart/related"),
        ("multipart/related; boundary=x", 415, "must be multipart/related"),
        ('multipart/related; type="application/dicom+json"; boundary=x', 415, "must be multipart/related"),
        (None, 415, "must be multipart/related"),
        ('multipart/related; type="application/dicom"', 400, "no boundary"),
    ],
)
def test_unusable_content_type_is_rejected_before_reading(store, content_type, status, message):
    with pytest.raises(ClientError, match=message) as rejected:
        stow.store_request(store, multipart(make_instance()), content_type, BASE)
    assert rejected.value.status == status
    assert content_type is None or content_type.split(";")[0] in str(rejected.value)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "empty"),
        (make_instance(), "does not contain the boundary"),
        (multipart(make_instance())[:-30], "truncated"),
        (multipart(make_instance(), make_instance())[:900], "truncated"),
        (b"--test-boundary--\r\n", "no parts"),
        (b"--test-boundary\r\nContent-Type: application/dicom", "truncated"),
        (b"--test-boundaryX\r\n\r\nabc\r\n--test-boundary--", "malformed"),
        (b"--test-boundary\r\nContent-Type: application/dicom\r\nabc\r\n--test-boundary--", "no blank line"),
    ],
    ids=["empty", "not-multipart", "no-close", "cut-in-part", "no-parts", "cut-in-headers", "wrong-boundary",
         "no-blank-line"],
)
def test_malformed_body_is_400_and_stores_nothing(store, body, message):
    with pytest.raises(ClientError, match=message) as rejected:
        post(store, body)
    assert rejected.value.status == 400
    assert not store.container.exists()


def test_preamble_epilogue_padding_and_headerless_parts_are_understood(store):
    study = generate_uid()
    first, second = make_instance(study=study), make_instance(study=study)
    body = (b"preamble to ignore\r\n--b  \t\r\n\r\n" + first
            + b"\r\n--b\r\ncontent-type: Application/DICOM; transfer-syntax=1.2.840.10008.1.2.1\r\n"
            + b"Content-ID: <x>\r\n\r\n" + second + b"\r\n--b--\r\nepilogue")
    result = stow.store_request(store, body, 'Multipart/Related; boundary="b"; type="application/dicom"', BASE)
    assert result.status == 200
    assert len(stored_names(store, study)) == 2


def test_parts_are_views_into_the_body_not_copies():
    body = multipart(b"x" * 1000, b"y" * 10)
    [(headers, first), (_, second)] = stow.split_multipart(body, "test-boundary")
    assert headers == {"content-type": "application/dicom"}
    assert first.obj is body and second.obj is body
    assert bytes(first) == b"x" * 1000 and bytes(second) == b"y" * 10


def test_a_deflated_instance_is_read_and_stored(store):
    ds = make_dataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = encode(ds)
    result = post(store, multipart(data))
    assert result.status == 200
    assert b"".join(store.download(blob_name(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                              ds.SOPInstanceUID)).chunks()) == data


def test_the_same_instance_twice_in_one_request_ends_as_the_last_part(store):
    ds = make_dataset(pixel_bytes=9 * 1024 * 1024)  # large enough for block uploads, which would collide
    first = encode(ds)
    ds.PatientID = "LATER"
    second = encode(ds)
    result = post(store, multipart(first, second))
    assert result.status == 200
    name = blob_name(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert b"".join(store.download(name).chunks()) == second



def test_a_file_without_preamble_is_not_part_10(store):
    """What pydicom writes for a data set made in memory without a `preamble`: no reader can open it
    without forcing (dicomweb-client's retrieve could not read it back), so it is refused."""
    result = post(store, multipart(encode(make_dataset())[132:]))
    assert failures(result) == [(0xC000, "part 1: not a DICOM Part 10 file (no DICM prefix)")]
