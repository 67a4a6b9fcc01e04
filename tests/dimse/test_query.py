"""Queries against a PACS over DIMSE (Orthanc's DICOM port): the shared corpus (tests/query/corpus.py) selects
what the standard says page by page, a key the PACS ignores never widens it, several queries take each instance once, a capped PACS fails the search
loudly, and an export by query runs through the host with DicomStore__Type=dimse.

This module runs its own Orthanc holding only the corpus's archive: C-FIND cannot page, so unlike the
DICOMweb run (tests/orthanc/test_query.py) it is not capped; a capped one is its own test.
"""

from __future__ import annotations

import pytest

from shared.query import parse_query
from shared.stores.dimse import store as dimse_store
from shared.stores.factory import open_store
from shared.stores.interface import StoreError
from testkit.exporting import export_host, finished, new_container, start
from testkit.orthanc import Orthanc
from tests.orthanc.test_query import searched
from tests.query import corpus

from .conftest import assert_as_stored


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Orthanc:
    server = Orthanc(tmp_path_factory.mktemp("orthanc-dimse-query")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def archive(pacs: Orthanc) -> tuple[dict[str, bytes], dict[str, str]]:
    files, uids = corpus.build()
    pacs.stow(*files.values())
    return files, uids


@pytest.fixture(scope="module")
def store(pacs: Orthanc):
    found = open_store(pacs.dimse_settings())
    yield found
    found.close()


@pytest.mark.parametrize(("template", "units"), corpus.CASES, ids=[str(q) for q, _ in corpus.CASES])
def test_each_kind_of_matching_selects_what_the_standard_says(store, archive, template, units):
    files, uids = archive
    names, dropped = searched(store, parse_query(corpus.query(template, uids)), page_size=2)
    assert sorted(names) == sorted(corpus.selected(units, uids, files))  # each once, none missing, in pages of 2
    assert dropped == 0  # Orthanc's C-FIND matches every kind itself


def test_each_instance_comes_with_its_attributes_and_included_keys(store, archive):
    files, uids = archive
    page = store.search_page(parse_query({"Modality": "MR"}), None, 10, include=("InstanceNumber", "PatientID"))
    assert sorted(i.blob_name for i, _ in page.instances) == sorted(corpus.selected({"S1b", "S3a"}, uids, files))
    for instance, attributes in page.instances:
        assert attributes["Modality"] == ["MR"] and attributes["StudyInstanceUID"] == [instance.study]
        assert attributes["InstanceNumber"] and attributes["PatientID"][0].startswith("P-")
        assert instance.etag == "1.2.840.10008.5.1.4.1.1.2"  # the SOP class the C-GET proposes


def test_the_cursor_resumes_where_the_page_stopped(store, archive):
    files, uids = archive
    query = parse_query({"PatientID": "P-00*"})
    first = store.search_page(query, None, 3)
    assert len(first.instances) == 3 and first.cursor
    rest = store.search_page(query, first.cursor, 100)
    assert rest.cursor is None
    names = [i.blob_name for i, _ in first.instances + rest.instances]
    assert names == sorted(corpus.selected({"S1", "S2", "S3"}, uids, files))  # UID order, none twice


@pytest.mark.parametrize("page_size", [1, 10])
def test_a_pacs_that_ignores_a_key_never_widens_the_selection(store, archive, monkeypatch, page_size):
    """A PACS that ignores PatientID (asked it as a universal match: returned, not matched) answers every study;
    each row is checked, and counted once across pages."""
    files, uids = archive
    sent = dimse_store._keys
    monkeypatch.setattr(dimse_store, "_keys", lambda query, include, level: {
        k: "" if k == "PatientID" else v for k, v in sent(query, include, level).items()})
    names, dropped = searched(store, parse_query({"PatientID": "P-0042", "Modality": "MR"}), page_size=page_size)
    assert sorted(names) == sorted(corpus.selected({"S3a"}, uids, files))
    assert dropped == 3  # S1, S2 and S4's study rows came back and were left out


@pytest.mark.parametrize(("queries", "counts"), corpus.UNIONS)
def test_several_queries_take_each_instance_once(store, archive, queries, counts):
    files, uids = archive
    names, counted = corpus.expand_union(store, queries)
    assert names == sorted(corpus.selected({"S1", "S3"}, uids, files))
    assert counted == counts


def test_a_pacs_that_caps_its_results_fails_the_search_instead_of_shortening_it(tmp_path):
    capped = Orthanc(tmp_path / "orthanc", settings={"LimitFindResults": 3}).start()
    store = open_store(capped.dimse_settings())
    try:
        files, _ = corpus.build()
        capped.stow(*files.values())
        with pytest.raises(StoreError, match="stopped after 3 answers.*caps its C-FIND results"):
            store.search_page(parse_query({"PatientID": "*"}), None, 100)  # 4 studies
    finally:
        store.close()
        capped.stop()


def test_an_export_by_query_through_the_host(pacs, archive, tmp_path, storage_connection_string):
    """Overlapping queries and one matching nothing, with DicomStore__Type=dimse: the status counts each."""
    files, uids = archive
    host = export_host(tmp_path / "hub", storage_connection_string, "unused", **pacs.dimse_settings()).start()
    try:
        destination = new_container(storage_connection_string)
        operation = start(host, corpus.export_body(corpus.EXPORTED, destination, storage_connection_string))
        done = finished(operation["href"])
    finally:
        host.stop()
    corpus.check_exported(done, destination, operation["id"], files, uids, dropped=0, same=assert_as_stored)
