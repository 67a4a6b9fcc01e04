"""The DIMSE store against a real PACS (Orthanc's DICOM port): C-FIND walks, C-GET as stored, refusals."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pydicom
import pytest

from shared.errors import Misconfigured
from shared.stores.dimse.store import DimseStore
from shared.stores.factory import check_settings, open_store
from shared.stores.interface import InstanceChangedOrGone, StoredInstance, StoreError
from shared.uids import Identifier
from testkit.host import wait_for
from testkit.lanes import assert_lanes_cover_the_store
from testkit.orthanc import Orthanc
from testkit.seed import uid
from tests.orthanc.conftest import files_as_they_are, make_study

from .conftest import assert_as_stored, make_certificates, pacs_connections


@pytest.fixture(scope="module")
def store(orthanc: Orthanc) -> DimseStore:
    found = open_store(orthanc.dimse_settings())
    yield found
    found.close()


def listed(store: DimseStore, identifier: Identifier | None, page_size: int) -> list[StoredInstance]:
    """Every instance under `identifier`, page by page from the cursors."""
    found, cursor = [], None
    while True:
        page, cursor = store.list_page(identifier, cursor, page_size)
        assert len(page) <= page_size
        found += page
        if cursor is None:
            return found


def names(instances: list[StoredInstance]) -> list[str]:
    return [i.blob_name for i in instances]


def read(store: DimseStore, instance: StoredInstance) -> bytes:
    return b"".join(store.open(instance).chunks())


def test_studies_series_and_instances_list_exactly_their_instances_page_by_page(orthanc, store):
    made = make_study(series=3, instances=3)
    orthanc.stow(*made.values())
    study, series, sop = next(iter(made))[:-4].split("/")

    assert names(listed(store, Identifier(study), page_size=2)) == sorted(made)
    assert names(listed(store, Identifier(study, series), page_size=2)) == sorted(
        n for n in made if n.startswith(f"{study}/{series}/"))
    assert names(listed(store, Identifier(study, series, sop), page_size=2)) == [f"{study}/{series}/{sop}.dcm"]
    for unknown in (Identifier(uid()), Identifier(study, uid()), Identifier(study, series, uid())):
        assert store.list_page(unknown, None, 10) == ([], None)


def test_the_whole_store_is_every_study_in_bounded_pages(orthanc, store):
    made = {**make_study(1, 3), **make_study(2, 2), **make_study(1, 1)}
    orthanc.stow(*made.values())
    everything = names(listed(store, None, page_size=4))
    assert set(made) <= set(everything) and len(everything) == len(set(everything))


def test_instances_come_back_in_their_stored_transfer_syntax_with_their_dataset_intact(orthanc, store):
    """JPEG 2000, JPEG lossy and baseline, RLE and uncompressed come as stored (conftest.assert_as_stored)."""
    made = files_as_they_are()
    orthanc.stow(*made.values())
    byte_equal = 0
    for name, data in made.items():
        instance = next(i for i in listed(store, Identifier(*name[:-4].split("/")), 10))
        assert instance.etag == pydicom.dcmread(io.BytesIO(data)).SOPClassUID
        byte_equal += assert_as_stored(read(store, instance), data, name)
    assert byte_equal >= 2  # the uncompressed and the JPEG baseline file, which hold no undefined lengths


def test_an_instance_not_in_the_pacs_is_gone_not_an_outage(orthanc, store):
    made = make_study(1, 1)
    orthanc.stow(*made.values())
    known = listed(store, Identifier(next(iter(made)).split("/")[0]), 10)[0]
    with pytest.raises(InstanceChangedOrGone):
        store.open(StoredInstance(known.study, known.series, uid(), None, known.etag))


def test_a_wrong_called_ae_title_fails_with_a_reason_naming_it(orthanc):
    wrong = open_store({**orthanc.dimse_settings(), "DicomStore__CalledAETitle": "NOT-ORTHANC"})
    try:
        with pytest.raises(StoreError) as refused:
            wrong.list_page(Identifier(uid()), None, 10)
        assert "refused the association" in str(refused.value) and "NOT-ORTHANC" in str(refused.value)
        assert "DicomStore__CalledAETitle" in str(refused.value)
    finally:
        wrong.close()


def test_an_ae_the_pacs_does_not_know_may_not_query(orthanc):
    stranger = open_store({**orthanc.dimse_settings(), "DicomStore__CallingAETitle": "STRANGER"})
    try:
        with pytest.raises(StoreError):
            stranger.list_page(Identifier(uid()), None, 10)
    finally:
        stranger.close()


@pytest.mark.parametrize(("setting", "value", "named"), [
    ("DicomStore__Host", "", "DicomStore__Host"),
    ("DicomStore__Port", "eleven", "DicomStore__Port"),
    ("DicomStore__CalledAETitle", "A" * 17, "DicomStore__CalledAETitle"),
    ("DicomStore__CallingAETitle", "back\\slash", "DicomStore__CallingAETitle"),
    ("DicomStore__MaxAssociations", "0", "DicomStore__MaxAssociations"),
    ("DicomStore__TimeoutSeconds", "soon", "DicomStore__TimeoutSeconds"),
    ("DicomStore__TlsCaFile", "/nowhere/ca.pem", "DicomStore__TlsCaFile"),
])
def test_a_wrong_setting_is_named_before_anything_connects(setting, value, named):
    settings = {"DicomStore__Type": "dimse", "DicomStore__Host": "127.0.0.1", "DicomStore__Port": "11112",
                "DicomStore__CalledAETitle": "PACS", setting: value}
    if setting == "DicomStore__TlsCaFile":
        settings["DicomStore__Tls"] = "true"
    with pytest.raises(Misconfigured, match=named):
        check_settings(settings)


def test_associations_are_reused_bounded_and_released_when_idle(orthanc, store):
    made = make_study(series=2, instances=6)
    orthanc.stow(*made.values())
    store.associations.release_idle(0)  # the module's store holds none open
    wait_for_no_associations(orthanc)
    bounded = open_store({**orthanc.dimse_settings(), "DicomStore__MaxAssociations": "2"})
    seen, copying = [], threading.Event()

    def sample() -> None:
        while not copying.is_set():
            seen.append(pacs_connections(orthanc))
            time.sleep(0.005)

    try:
        instances = listed(bounded, Identifier(next(iter(made)).split("/")[0]), 100)
        sampler = threading.Thread(target=sample)
        sampler.start()
        with ThreadPoolExecutor(6) as pool:
            copied = list(pool.map(lambda i: read(bounded, i), instances))
        copying.set()
        sampler.join()
        assert len(copied) == len(made) and max(seen) <= 2 and bounded.associations.open_count <= 2
    finally:
        bounded.close()
    wait_for_no_associations(orthanc)


def wait_for_no_associations(orthanc: Orthanc) -> None:
    wait_for(lambda: pacs_connections(orthanc) == 0, timeout=30, interval=0.05, message="no association left open")


@pytest.mark.parametrize(("limit", "series", "instances"), [("LimitFindInstances", 1, 3), ("LimitFindResults", 3, 1)])
def test_a_pacs_that_caps_its_results_fails_the_listing_instead_of_shortening_it(tmp_path, limit, series, instances):
    capped = Orthanc(tmp_path / "orthanc", settings={limit: 2}).start()
    store = open_store(capped.dimse_settings())
    try:
        made = make_study(series=series, instances=instances)
        capped.stow(*made.values())
        study, one_series, _ = next(iter(made))[:-4].split("/")
        with pytest.raises(StoreError, match=f"stopped after 2 answers.*caps its C-FIND results.*{limit}"):
            store.list_page(Identifier(study), None, 100)
        if limit == "LimitFindInstances":
            with pytest.raises(StoreError, match="stopped after 2 answers"):
                store.list_page(Identifier(study, one_series), None, 100)
    finally:
        store.close()
        capped.stop()


def test_dicom_tls_with_a_client_certificate_and_the_pacs_certificate_verified(tmp_path):
    certificates = make_certificates(tmp_path)
    secured = Orthanc(tmp_path / "orthanc", settings={
        "DicomTlsEnabled": True, "DicomTlsCertificate": str(certificates["server_cert"]),
        "DicomTlsPrivateKey": str(certificates["server_key"]), "DicomTlsTrustedCertificates": str(certificates["ca"]),
        "DicomTlsRemoteCertificateRequired": True}).start()
    tls = {**secured.dimse_settings(), "DicomStore__Tls": "true", "DicomStore__TlsCaFile": str(certificates["ca"])}
    client = {"DicomStore__TlsCertificateFile": str(certificates["client_cert"]),
              "DicomStore__TlsKeyFile": str(certificates["client_key"])}
    stores = []
    try:
        made = make_study(1, 2)
        secured.stow(*made.values())
        study = next(iter(made)).split("/")[0]
        stores.append(store := open_store({**tls, **client}))
        instances = listed(store, Identifier(study), 10)
        assert sorted(names(instances)) == sorted(made)
        assert_as_stored(read(store, instances[0]), made[instances[0].blob_name], "over TLS")
        for refused in ({**tls}, {**secured.dimse_settings(), "DicomStore__Tls": "true", **client}, secured.dimse_settings()):
            stores.append(store := open_store(refused))  # no client certificate; the PACS's CA unknown; no TLS
            with pytest.raises(StoreError, match="no association"):
                store.list_page(Identifier(study), None, 10)
    finally:
        for store in stores:
            store.close()
        secured.stop()


def test_study_key_ranges_cut_the_pacs_into_lanes_that_list_it_once(orthanc, store):
    orthanc.stow(*{**make_study(1, 2), **make_study(1, 2), **make_study(2, 1)}.values())
    assert_lanes_cover_the_store(store, 3)
