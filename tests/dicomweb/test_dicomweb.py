"""DICOMweb through the local host over real HTTP: the `dicomweb-client` package and plain requests."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from dicomweb_client import DICOMwebClient
from pydicom.uid import generate_uid

from shared.uids import Identifier
from testkit.instances import OMIT, make_dataset, make_instance, multipart, stow_content_type

MULTIPART_DICOM = 'multipart/related; type="application/dicom"'


def listed(store, study: str) -> list[str]:
    try:
        return [found.instance for found in store.iter_instances(Identifier(study))]
    except ResourceNotFoundError:
        return []


def post(host, body: bytes, path: str = "studies", content_type: str | None = None) -> requests.Response:
    return requests.post(f"{host.base_url}/{path}", data=body,
                         headers={"Content-Type": content_type or stow_content_type()}, timeout=60)


def instance_url(host, ds, prefix: str = "") -> str:
    return (f"{host.base_url}/{prefix}studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


@pytest.mark.parametrize("prefix", ["", "v1/", "v2/"])
def test_store_and_retrieve_with_dicomweb_client(host, prefix):
    client = DICOMwebClient(url=f"{host.base_url}/{prefix}".rstrip("/"))
    study = generate_uid()
    datasets = [make_dataset(study=study, pixel_bytes=2048) for _ in range(3)]
    response = client.store_instances(datasets, study_instance_uid=study)
    stored = [item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence]
    assert stored == [ds.SOPInstanceUID for ds in datasets]
    # dicomweb-client sends `Host` without the port, and the URLs follow the Host header: compare paths.
    assert urlsplit(response.RetrieveURL).path == f"/{prefix}studies/{study}"
    assert urlsplit(response.ReferencedSOPSequence[0].RetrieveURL).path == urlsplit(
        instance_url(host, datasets[0], prefix)).path
    for ds in datasets:
        got = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert (got.SOPInstanceUID, got.PixelData) == (ds.SOPInstanceUID, ds.PixelData)


def test_bytes_come_back_exactly_as_sent(host, store):
    ds = make_dataset(pixel_bytes=100_000)
    data = make_instance(study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, sop=ds.SOPInstanceUID,
                         pixel_bytes=100_000)
    assert post(host, multipart(data)).status_code == 200
    single = requests.get(instance_url(host, ds), headers={"Accept": "application/dicom"}, timeout=60)
    assert single.status_code == 200
    assert single.headers["Content-Type"] == "application/dicom"
    assert single.content == data


def test_partial_failure_is_reported_by_the_client(client):
    study = generate_uid()
    good, other = make_dataset(study=study), make_dataset()
    response = client.store_instances([good, other], study_instance_uid=study)  # 202: the client returns
    assert [item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence] == [good.SOPInstanceUID]
    [failed] = response.FailedSOPSequence
    assert (failed.ReferencedSOPInstanceUID, failed.FailureReason) == (other.SOPInstanceUID, 0xA900)
    assert failed.ErrorComment == "part 2: Study Instance UID is not the study in the URL"


@pytest.mark.parametrize(
    "body, content_type, path, status, reason",
    [
        (make_instance(), "application/dicom", "studies", 415, "must be multipart/related"),
        (b"", None, "studies", 400, "empty"),
        (multipart(make_instance(pixel_bytes=5000))[:3000], None, "studies", 400, "truncated multipart body"),
        (multipart(b"just some text"), None, "studies", 409, "not a DICOM Part 10 file"),
        (multipart(make_instance(SeriesInstanceUID=OMIT)), None, "studies", 409,
         "missing Series Instance UID (0020,000E)"),
        (multipart(make_instance(SOPInstanceUID="1.2.abc")), None, "studies", 409,
         "SOP Instance UID (0008,0018) is not a valid UID"),
        (multipart(make_instance()), None, "studies/1.2.3", 409, "not the study in the URL"),
        (multipart(make_instance()), None, "studies/1.2.abc", 400, "route parameter 'study'"),
    ],
    ids=["not-multipart", "empty", "truncated", "not-dicom", "missing-uid", "uid-letters", "study-mismatch",
         "bad-study-in-url"],
)
def test_bad_bodies_get_a_clear_reason_and_store_nothing(host, store, body, content_type, path, status, reason):
    before = sum(1 for _ in _all(store))
    response = post(host, body, path, content_type)
    assert response.status_code == status, response.text
    if status == 409:
        assert response.headers["Content-Type"] == "application/dicom+json"
        [item] = response.json()["00081198"]["Value"]
        assert reason in item["00000902"]["Value"][0]
    else:
        assert reason in response.json()["error"]
    assert sum(1 for _ in _all(store)) == before


def _all(store):
    try:
        yield from store.container.list_blobs()
    except ResourceNotFoundError:
        return


@pytest.mark.parametrize(
    "accept, content_type",
    [
        (None, MULTIPART_DICOM),
        ("*/*", MULTIPART_DICOM),
        ('multipart/related; type="application/dicom"; transfer-syntax=*', MULTIPART_DICOM),
        ("application/dicom", "application/dicom"),
        ("application/dicom; transfer-syntax=*", "application/dicom"),
        ("image/jpeg, application/dicom;q=0.5", "application/dicom"),
    ],
)
def test_retrieve_media_types(host, accept, content_type):
    ds = make_dataset()
    data = make_instance(study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, sop=ds.SOPInstanceUID)
    assert post(host, multipart(data)).status_code == 200
    headers = {"Accept": accept} if accept else {}
    response = requests.get(instance_url(host, ds), headers=headers, timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(content_type)
    if content_type == "application/dicom":
        assert response.content == data
    else:
        assert data in response.content


def test_unsupported_accept_is_406(host):
    ds = make_dataset()
    response = requests.get(instance_url(host, ds), headers={"Accept": "application/dicom+json"}, timeout=60)
    assert response.status_code == 406
    assert "application/dicom" in response.json()["error"]


def test_absent_instance_is_404(host):
    response = requests.get(instance_url(host, make_dataset()), timeout=60)
    assert response.status_code == 404
    assert "not in the store" in response.json()["error"]


@pytest.mark.parametrize(
    "path, parameter",
    [
        ("studies/1.2.abc/series/1.3/instances/1.4", "study"),
        ("studies/1.2/series/1..3/instances/1.4", "series"),
        ("studies/1.2/series/1.3/instances/1.4.", "sop"),
        (f"studies/1.2/series/1.3/instances/1.{'4' * 70}", "sop"),
        ("studies/1.2/series/%2e%2e/instances/1.4", "series"),
        ("studies/1.2/series/1.3/instances/..%2f..%2fx", "sop"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_bad_route_parameters_are_400_naming_them(host, method, path, parameter):
    response = requests.request(method, f"{host.base_url}/{path}", timeout=60)
    assert response.status_code == 400, response.text
    assert f"route parameter '{parameter}'" in response.json()["error"]


def test_delete_instance_series_study(host, store):
    study, series = generate_uid(), generate_uid()
    datasets = [make_dataset(study=study, series=series) for _ in range(3)] + [make_dataset(study=study)]
    assert post(host, multipart(*(make_instance(study=d.StudyInstanceUID, series=d.SeriesInstanceUID,
                                                sop=d.SOPInstanceUID) for d in datasets))).status_code == 200
    first = datasets[0]
    assert requests.delete(instance_url(host, first), timeout=60).status_code == 204
    assert requests.get(instance_url(host, first), timeout=60).status_code == 404
    assert requests.delete(instance_url(host, first), timeout=60).status_code == 404
    series_url = f"{host.base_url}/v1/studies/{study}/series/{series}"
    assert requests.delete(series_url, timeout=60).status_code == 204
    assert listed(store, study) == [datasets[3].SOPInstanceUID]
    study_url = f"{host.base_url}/v2/studies/{study}"
    assert requests.delete(study_url, timeout=60).status_code == 204
    response = requests.delete(study_url, timeout=60)
    assert response.status_code == 404 and study in response.json()["error"]
    assert listed(store, study) == []


def test_retrieve_urls_never_carry_the_function_key(host):
    study = generate_uid()
    response = post(host, multipart(make_instance(study=study)), f"v1/studies/{study}?code=not-to-be-echoed")
    assert response.status_code == 200
    assert "not-to-be-echoed" not in response.text
    assert response.json()["00081190"]["Value"] == [f"{host.base_url}/v1/studies/{study}"]
