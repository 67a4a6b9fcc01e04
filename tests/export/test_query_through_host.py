"""Queries on the built-in blob store: the same cases as against Orthanc select the same instances, and an
export by query through the host takes the union of its queries, each instance once.

The archive is stored through the host's STOW-RS (indexed in each blob's metadata), except study S4, put
straight into the container as files copied in by other means would be (no index: its headers are read).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from shared.query import parse_query
from shared.stores.blob import search
from shared.stores.blob.index import indexed_attributes
from testkit.exporting import error_log, finished, host_fixtures, results, start
from tests.query import corpus

hosts, store, destination = host_fixtures("query-hosts")


@pytest.fixture(scope="module")
def archive(hosts, store) -> tuple[dict[str, bytes], dict[str, str]]:
    files, uids = corpus.build()
    stowed = [data for name, data in files.items() if not name.startswith(uids["S4"])]
    parts = b"".join(b"--b\r\nContent-Type: application/dicom\r\n\r\n%s\r\n" % data for data in stowed)
    r = requests.post(f"{hosts().base_url}/studies", data=parts + b"--b--\r\n", timeout=60, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=b', "Accept": "application/dicom+json"})
    assert r.status_code == 200, r.text
    for name, data in files.items():
        if name.startswith(uids["S4"]):
            store.put(*name[: -len(".dcm")].split("/"), io.BytesIO(data), len(data))
    return files, uids


def test_stow_indexes_each_instance_in_its_metadata_and_a_blob_put_straight_has_none(store, archive):
    files, uids = archive
    metadata = {b.name: indexed_attributes(b.metadata) for b in store.container.list_blobs(include=["metadata"])}
    s1 = next(n for n in files if n.startswith(f"{uids['S1']}/{uids['S1a']}/"))
    assert metadata[s1]["PatientName"] == ["Doe^John"] and metadata[s1]["Modality"] == ["CT"]
    assert metadata[s1]["StudyDate"] == ["20230315"] and metadata[s1]["InstanceNumber"] in (["1"], ["2"])
    assert all(metadata[n] is None for n in files if n.startswith(uids["S4"]))


@pytest.mark.parametrize(("template", "units"), corpus.CASES, ids=[str(q) for q, _ in corpus.CASES])
def test_each_kind_of_matching_selects_what_orthanc_selects(store, archive, template, units, monkeypatch):
    monkeypatch.setattr(search, "LISTING_PAGE", 3)  # studies cut across listing pages too
    files, uids = archive
    query, names, cursor = parse_query(corpus.query(template, uids)), [], None
    while True:  # pages of 2 instances: studies are cut across pages
        page = store.search_page(query, cursor, 2)
        assert len(page.instances) <= 2 and page.dropped == 0
        names += [instance.blob_name for instance, _ in page.instances]
        if not (cursor := page.cursor):
            break
    assert sorted(names) == sorted(corpus.selected(units, uids, files))


def test_an_export_by_overlapping_queries_takes_each_instance_once(hosts, archive, destination,
                                                                   storage_connection_string):
    files, uids = archive
    operation = start(hosts(), corpus.export_body(corpus.EXPORTED, destination, storage_connection_string))
    corpus.check_exported(finished(operation["href"]), destination, operation["id"], files, uids, dropped=0)
    assert error_log(destination, operation["id"]) == []


@pytest.mark.parametrize(("queries", "field", "words"), [
    ([{"Modality": "CT"}, {"StudyDat": "20230101"}], "source.settings.queries[1].StudyDat", "not a DICOM attribute"),
    ([{"StudyDate": "2023"}], "source.settings.queries[0].StudyDate", "YYYYMMDD"),
    ([{"PixelData": "1"}], "source.settings.queries[0].PixelData", "cannot be matched at any level"),
    ([{}], "source.settings.queries[0]", "is empty"),
    ([], "source.settings.queries", "is empty"),
    ([{"StudyInstanceUID": "1.2.*"}], "source.settings.queries[0].StudyInstanceUID", "UID"),
])
def test_a_bad_query_is_a_400_naming_it_and_nothing_starts(hosts, destination, storage_connection_string,
                                                           queries, field, words):
    r = requests.post(f"{hosts().base_url}/export", json=corpus.export_body(queries, destination, storage_connection_string),
                      timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(field) and words in r.json()["error"], r.text
    assert list(destination.list_blobs()) == []  # not even an errors.log


def cli(host, *args: str) -> subprocess.CompletedProcess:
    """`dicom-export ARGS` as a user runs it, against `host`."""
    return subprocess.run([sys.executable, "-m", "cli", "--url", host.base_url, *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_the_cli_searches_then_exports_by_query(hosts, archive, destination, storage_connection_string):
    files, uids = archive
    host = hosts()
    flags = ["--query", "PatientID=P-00*", "--query", "ModalitiesInStudy=MR", "--where", "--query", "Modality=CT",
             "--query", "00180015=HEAD"]  # (S1 or S3) or S2's CT head series

    shown = cli(host, "search", *flags)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"  {uids['S1']}  3 instances" in lines and f"  {uids['S2']}/{uids['S2a']}  1 instance" in lines
    assert lines[-1] == "an export by these queries takes 6 instances"
    found = json.loads(cli(host, "search", "--json", *flags).stdout)
    assert [(r["level"], r["instances"], len(r["matches"])) for r in found] == [("study", 5, 2), ("series", 1, 1)]

    exported = cli(host, "export", "--json", *flags, "--connection-string", storage_connection_string,
                   "--container", destination.container_name, "--wait", "--interval", "0.1")
    assert exported.returncode == 0, exported.stderr
    operation = json.loads(exported.stdout)
    assert operation["results"]["exported"] == 6
    assert set(results(destination, operation["operationId"])) == corpus.selected({"S1", "S3", "S2a"}, uids, files)

    refused = cli(host, "search", "--query", "StudyDate=2023")
    assert refused.returncode == 3 and "queries[0].StudyDate" in refused.stderr



@pytest.mark.parametrize(("queries", "counts"), corpus.UNIONS)
def test_several_queries_take_each_instance_once_as_on_orthanc(store, archive, queries, counts):
    files, uids = archive
    names, searched = corpus.expand_union(store, queries)
    assert names == sorted(corpus.selected({"S1", "S3"}, uids, files))
    assert searched == counts


def test_dicomweb_client_searches_the_built_in_store_as_the_export_selects(hosts, archive):
    _, uids = archive
    client = DICOMwebClient(hosts().base_url)
    studies = client.search_for_studies(search_filters={"StudyDate": "20230101-20231231"})
    assert {s["0020000D"]["Value"][0] for s in studies} == {uids["S1"], uids["S4"]}  # S4: no index, still found
    s1 = next(s for s in studies if s["0020000D"]["Value"][0] == uids["S1"])
    assert s1["00080061"]["Value"] == ["CT", "MR"] and s1["00201208"]["Value"] == [3]
    assert s1["00100010"]["Value"] == [{"Alphabetic": "Doe^John"}]

    series = client.search_for_series(uids["S1"], search_filters={"Modality": "MR"}, fields=["BodyPartExamined"])
    assert [(s["0020000E"]["Value"][0], s["00180015"]["Value"]) for s in series] == [(uids["S1b"], ["BRAIN"])]
    instances = client.search_for_instances(uids["S1"], uids["S1a"], search_filters={"InstanceNumber": "2"})
    assert [i["00080018"]["Value"][0] for i in instances] == [uids["S1a2"]]

    everything = client.search_for_studies(search_filters={"PatientID": "P-00*"})
    paged = [row for offset in range(3) for row in client.search_for_studies(
        search_filters={"PatientID": "P-00*"}, limit=1, offset=offset)]
    assert paged == everything and len(everything) == 3


@pytest.mark.parametrize(("path", "param"), [
    ("studies?Modality=CT", "Modality"), ("studies?limit=0", "limit"), ("studies?StudyDate=2023", "StudyDate"),
    ("studies?includefield=NotAKeyword", "includefield"), ("studies/1.2/series?offset=-1", "offset"),
])
def test_a_bad_qido_parameter_is_a_400_naming_it(hosts, path, param):
    r = requests.get(f"{hosts().base_url}/{path}", timeout=30)
    assert r.status_code == 400 and f"'{param}'" in r.json()["error"], r.text
