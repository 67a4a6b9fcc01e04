"""Queries against a real Orthanc: every kind of matching selects what the standard says, over capped pages,
a server that ignores a filter never widens an export, and an export of several queries takes each instance once.

This module runs its own Orthanc, capped at 3 results per query (`LimitFindResults`) so every search pages
and meets capped pages, holding only tests/query/corpus.py's archive.
"""

from __future__ import annotations

import pytest

from shared.query import parse_query
from shared.stores.factory import open_store
from testkit.exporting import error_log, export_host, finished, new_container, start
from testkit.orthanc import Orthanc
from tests.query import corpus
from tests.query.proxy import FilterDroppingProxy

CAP = 3


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Orthanc:
    server = Orthanc(tmp_path_factory.mktemp("orthanc-query"), settings={"LimitFindResults": CAP}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def archive(orthanc: Orthanc) -> tuple[dict[str, bytes], dict[str, str]]:
    files, uids = corpus.build()
    orthanc.stow(*files.values())
    return files, uids


def searched(store, query, page_size: int) -> tuple[list[str], int]:
    """Every instance the query selects, page by page from the cursors, and the rows dropped."""
    names, dropped, cursor = [], 0, None
    while True:
        page = store.search_page(query, cursor, page_size)
        assert len(page.instances) <= page_size
        names += [instance.blob_name for instance, _ in page.instances]
        dropped, cursor = dropped + page.dropped, page.cursor
        if cursor is None:
            return names, dropped


@pytest.mark.parametrize(("template", "units"), corpus.CASES, ids=[str(q) for q, _ in corpus.CASES])
def test_each_kind_of_matching_selects_what_the_standard_says(orthanc, archive, template, units):
    files, uids = archive
    store = open_store(orthanc.app_settings())
    names, dropped = searched(store, parse_query(corpus.query(template, uids)), page_size=2)
    assert sorted(names) == sorted(corpus.selected(units, uids, files))  # each once, none missing
    assert dropped == 0  # Orthanc, asked as the store asks it, matches every kind itself


def test_a_server_that_ignores_a_filter_never_widens_the_selection(orthanc, archive):
    files, uids = archive
    proxy = FilterDroppingProxy(orthanc.dicomweb_url, "00100020")  # PatientID
    try:
        store = open_store({**orthanc.app_settings(), "DicomStore__DicomWebUrl": proxy.url})
        names, dropped = searched(store, parse_query({"PatientID": "P-0042", "Modality": "MR"}), page_size=10)
    finally:
        proxy.stop()
    assert proxy.forwarded  # the filter was asked for, and dropped on the way
    assert sorted(names) == sorted(corpus.selected({"S3a"}, uids, files))
    assert dropped == 1  # S1's MR series came back and was left out


@pytest.mark.parametrize(("queries", "counts"), corpus.UNIONS)
def test_several_queries_take_each_instance_once(orthanc, archive, queries, counts):
    files, uids = archive
    names, searched = corpus.expand_union(open_store(orthanc.app_settings()), queries)
    assert names == sorted(corpus.selected({"S1", "S3"}, uids, files))
    assert searched == counts


def test_an_export_by_query_through_the_host(orthanc, archive, tmp_path, storage_connection_string):
    """Overlapping queries, one matching nothing, one whose filter the server ignores: the status says each."""
    files, uids = archive
    proxy = FilterDroppingProxy(orthanc.dicomweb_url, "00100020")
    host = export_host(tmp_path / "hub", storage_connection_string, "unused",
                       **{**orthanc.app_settings(), "DicomStore__DicomWebUrl": proxy.url}).start()
    try:
        destination = new_container(storage_connection_string)
        operation = start(host, corpus.export_body(corpus.EXPORTED, destination, storage_connection_string))
        done = finished(operation["href"])
    finally:
        host.stop()
        proxy.stop()
    corpus.check_exported(done, destination, operation["id"], files, uids, dropped=1)
    [line] = error_log(destination, operation["id"])
    assert "1 rows that do not match their query" in line["error"]

