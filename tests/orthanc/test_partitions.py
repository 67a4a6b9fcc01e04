"""Exporting one data partition of a DICOMweb store (`POST /partitions/{name}/export`) from real Orthancs.

A server with data partitions (the Azure DICOM service's `{base}/partitions/{name}/studies…` form) cannot run
here, so `PartitionProxy` stands in for it: a tiny HTTP proxy made in this test that sends
`/partitions/<name>/…` to the Orthanc that plays that partition, as that Orthanc's `/dicom-web/…`. Everything
behind it is real (Orthanc's QIDO-RS and WADO-RS, its authentication), so the test shows which partition the
export reads and that it copies only that partition's instances.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from shared.errors import ClientError
from shared.stores.factory import export_partition
from testkit.exporting import error_log, export_body, export_host, finished, new_container, results, start
from testkit.orthanc import Orthanc
from tests.query.proxy import relay

from .conftest import make_study

DEFAULT = "Microsoft.Default"


class PartitionProxy:
    """`http://127.0.0.1:<port>/partitions/<name>/<path>` → `<that partition's Orthanc>/dicom-web/<path>` (GET only);
    a name it does not know gets the Azure DICOM service's 400, a path without a partition too."""

    def __init__(self, partitions: dict[str, Orthanc]):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.paths.append(self.path)
                _, first, name, rest = (self.path.split("/", 3) + ["", "", ""])[:4]
                server = partitions.get(name) if first == "partitions" else None
                if server is None:
                    self.send_error(400, "Specified PartitionName does not exist")
                    return
                upstream = requests.get(f"{server.dicomweb_url}/{rest}", timeout=60, headers={
                    k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")})
                relay(self, upstream)

            def log_message(self, *args) -> None:
                pass

        self.paths: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> PartitionProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):
    """Partition `a` and the default partition, each its own Orthanc, behind the proxy."""
    a = Orthanc(tmp_path_factory.mktemp("partition-a")).start()
    default = Orthanc(tmp_path_factory.mktemp("partition-default")).start()
    proxy = PartitionProxy({"a": a, DEFAULT: default}).start()
    yield a, default, proxy
    proxy.stop()
    a.stop()
    default.stop()


@pytest.fixture(scope="module")
def host(servers, tmp_path_factory: pytest.TempPathFactory, storage_connection_string: str):
    a, _, proxy = servers
    settings = {**a.app_settings(), "DicomStore__DicomWebUrl": proxy.url, "DicomStore__DataPartitions": "true"}
    host = export_host(tmp_path_factory.mktemp("partitions") / "hub", storage_connection_string, "unused",
                       **settings).start()
    yield host
    host.stop()


def test_an_export_of_a_partition_copies_only_its_instances(servers, host, storage_connection_string):
    a, default, _ = servers
    in_a = make_study(series=1, instances=3)
    study = next(iter(in_a)).split("/")[0]
    in_default = {**make_study(series=1, instances=2, study=study), **make_study(series=1, instances=2)}  # same study UID too
    a.stow(*in_a.values())
    default.stow(*in_default.values())

    for route in ("partitions/a/export", "v2/partitions/a/export"):
        destination = new_container(storage_connection_string)
        body = export_body([], destination, storage_connection_string)
        del body["source"]  # the whole partition
        operation = start(host, body, route=route)
        done = finished(operation["href"])
        assert done["status"] in ("completed", "succeeded")
        assert (done["results"]["exported"], done["results"]["skipped"]) == (3, 0)
        assert done["partition"] == "a"
        assert results(destination, operation["id"]) == in_a
        assert error_log(destination, operation["id"]) == []

    destination = new_container(storage_connection_string)  # one study of the partition, by identifier
    operation = start(host, export_body([study], destination, storage_connection_string), route="v1/partitions/a/export")
    done = finished(operation["href"])
    assert (done["results"]["exported"], done["partition"]) == (3, "a")
    assert results(destination, operation["id"]) == in_a


def test_plain_export_on_a_partitioned_store_reads_the_default_partition(servers, host, storage_connection_string):
    _, default, proxy = servers
    made = make_study(series=2, instances=1)
    default.stow(*made.values())
    destination = new_container(storage_connection_string)
    operation = start(host, export_body([next(iter(made)).split("/")[0]], destination, storage_connection_string))
    done = finished(operation["href"])
    assert (done["status"], done["partition"], done["results"]["exported"]) == ("completed", DEFAULT, 2)
    assert results(destination, operation["id"]) == made
    assert all(path.startswith("/partitions/") for path in proxy.paths)  # never the server's unpartitioned routes


@pytest.mark.parametrize("name, problem", [("x" * 65, "at most 64"), ("a~b", "only letters, digits")])
def test_a_partition_name_the_service_refuses_is_a_400_naming_it(host, storage_connection_string, name, problem):
    body = export_body(["1.2"], None, None, connectionString=storage_connection_string, blobContainerName="unused")
    for prefix in ("", "v1/", "v2/"):
        r = requests.post(f"{host.base_url}/{prefix}partitions/{name}/export", json=body, timeout=30)
        assert r.status_code == 400 and "partitionName" in r.json()["error"] and problem in r.json()["error"], r.text


PARTITIONED = {"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": "http://x", "DicomStore__DataPartitions": "1"}


@pytest.mark.parametrize("name", ["a", "A-b_c.9", "1.2.840.10008", "x" * 64, DEFAULT])
def test_names_the_service_accepts_are_accepted(name):
    assert export_partition(name, PARTITIONED) == name
    assert export_partition(None, PARTITIONED) == DEFAULT


@pytest.mark.parametrize("name", ["", " ", "a b", "a/b", "é", ".", ".."])
def test_names_the_service_refuses_or_no_url_can_address_are_refused(name):
    with pytest.raises(ClientError, match="partitionName") as refused:
        export_partition(name, PARTITIONED)
    assert refused.value.status == 400


@pytest.mark.parametrize("settings, named", [
    ({}, "blob (DicomStore__Type=blob)"),
    ({"DicomStore__Type": "dimse", "DicomStore__Host": "h", "DicomStore__Port": "104"}, "dimse (DicomStore__Type=dimse)"),
    ({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": "http://x"},
     "dicomweb (DicomStore__Type=dicomweb without setting DicomStore__DataPartitions=true)"),
])
def test_a_store_without_partitions_refuses_them_naming_its_type(settings, named):
    with pytest.raises(ClientError, match="no data partitions") as refused:
        export_partition("a", settings)
    assert refused.value.status == 400 and named in str(refused.value)
    assert export_partition(None, settings) is None
