"""Copying batches against Azurite: byte-identical results with their Content-MD5, per-file skips, destination
faults fail the batch."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pytest
from azure.storage.blob import ContainerClient

from devhost.azurite import Azurite, free_port
from shared.deid.dataset import Deidentifier
from shared.deid.profile import Profile
from shared.deid.pseudonyms import Pseudonyms
from shared.errors import CopyFailed
from shared.export.copy import BatchCopier, fault_policy, result_path
from shared.export.destination import Destination, destination_problem, parse_destination
from shared.export.errors_log import ErrorLog
from shared.export.upload import ContentMismatch, Digests, hash_blob, upload, with_md5
from shared.outputs.spec import OutputSpec
from shared.stores.blob.store import DicomStore
from shared.transfer import BLOCK_SIZE, DICOM_CONTENT, SINGLE_PUT_SIZE
from shared.uids import Identifier
from testkit.instances import make_instance
from testkit.shipped import load, readable

from .conftest import POLICY, put, put_series

OPERATION = "0123456789abcdef0123456789abcdef"


def copier(store: DicomStore, destination: Destination, mode: str = "stream", threads: int = 3) -> BatchCopier:
    return BatchCopier(store, destination.container_client(), OPERATION,
                       lambda error: destination_problem(error, destination), mode=mode, threads=threads)


def error_lines(client: ContainerClient) -> list[dict]:
    text = client.download_blob(f"{OPERATION}/errors.log").readall().decode()
    return [json.loads(line) for line in text.splitlines()]


def results(client: ContainerClient) -> dict[str, bytes]:
    prefix = f"{OPERATION}/results/"
    return {b.name[len(prefix):]: client.download_blob(b.name).readall()
            for b in client.list_blobs(name_starts_with=prefix)}


@pytest.mark.parametrize("mode", ["stream", "server", "auto"])
def test_copies_are_byte_identical_at_the_published_paths(store, destination, mode, monkeypatch):
    served = []
    original = BatchCopier._server_copy

    def server_copy(self, *args):
        digests = original(self, *args)
        served.append(args)  # copied server-side (a refusal raises before this)
        return digests

    monkeypatch.setattr(BatchCopier, "_server_copy", server_copy)
    stored = put_series(store, "1.2", "1.2.3", 7, size=2000)
    stored.update(put_series(store, "1.2", "1.2.4", 1, size=9 * 1024 * 1024 + 17))  # several blocks
    instances = list(store.iter_instances(Identifier("1.2")))

    result = copier(store, destination, mode).copy(instances)

    assert (result.exported, result.skipped) == (8, 0)
    assert len(served) == (0 if mode == "stream" else 8)  # Azurite copies within one account server-side
    assert results(destination.container_client()) == stored
    copied = destination.container_client().get_blob_client(result_path(OPERATION, instances[0]))
    assert copied.get_blob_properties().content_settings.content_type == "application/dicom"


def test_a_retried_batch_overwrites_what_it_wrote(store, destination):
    stored = put_series(store, "1.2", "1.2.3", 3)
    instances = list(store.iter_instances(Identifier("1.2")))
    copier(store, destination).copy(instances)
    assert copier(store, destination).copy(instances).exported == 3
    assert results(destination.container_client()) == stored


def test_instances_deleted_after_listing_are_skipped_and_logged_and_replaced_ones_copied_as_they_are_now(
        store, destination):
    put_series(store, "1.2", "1.2.3", 4)
    instances = list(store.iter_instances(Identifier("1.2")))
    store.container.delete_blob(instances[0].blob_name)
    store.container.delete_blob(instances[1].blob_name)
    _, now = put(store, "1.2", "1.2.3", instances[2].instance, size=10)  # replaced since listed
    ErrorLog(destination.container_client(), OPERATION).create()

    result = copier(store, destination).copy(instances)

    assert (result.exported, result.skipped) == (2, 2)
    lines = error_lines(destination.container_client())
    assert sorted(line["identifier"] for line in lines) == sorted(str(i.identifier) for i in instances[:2])
    assert all("after the export listed it" in line["error"] for line in lines)
    assert all(line["timestamp"].endswith("Z") for line in lines)
    assert results(destination.container_client())[instances[2].blob_name] == now


def test_an_instance_replaced_while_it_is_read_is_skipped_not_mixed(store, destination, monkeypatch):
    _, first = put(store, "1.2", "1.2.3", "1.2.3.1", size=SINGLE_PUT_SIZE + BLOCK_SIZE)  # read in two requests
    instances = list(store.iter_instances(Identifier("1.2")))
    opened = DicomStore.open

    def open_then_replace(self, instance):
        download = opened(self, instance)  # its first request is answered: the rest is pinned to that version
        put(store, "1.2", "1.2.3", "1.2.3.1", size=len(first))
        return download

    monkeypatch.setattr(DicomStore, "open", open_then_replace)
    ErrorLog(destination.container_client(), OPERATION).create()

    result = copier(store, destination).copy(instances)

    assert (result.exported, result.skipped) == (0, 1)
    assert "replaced in the store" in error_lines(destination.container_client())[0]["error"]
    assert results(destination.container_client()) == {}


def test_a_deleted_destination_container_fails_the_batch_with_its_name(store, destination):
    put_series(store, "1.2", "1.2.3", 5)
    instances = list(store.iter_instances(Identifier("1.2")))
    destination.container_client().delete_container()
    with pytest.raises(CopyFailed) as failed:
        copier(store, destination).copy(instances)
    assert f"container '{destination.container}' in storage account 'devstoreaccount1'" in str(failed.value)


def test_an_expired_sas_fails_the_batch_without_quoting_it(store, destination, storage_connection_string):
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    from shared.export.destination import EMULATOR_KEY
    put_series(store, "1.2", "1.2.3", 2)
    instances = list(store.iter_instances(Identifier("1.2")))
    sas = generate_container_sas("devstoreaccount1", destination.container, account_key=EMULATOR_KEY,
                                 permission=ContainerSasPermissions(write=True, create=True),
                                 expiry=datetime.now(UTC) - timedelta(minutes=5))
    expired = Destination(destination.account_url, destination.container, destination.account, sas=sas)
    with pytest.raises(CopyFailed) as failed:
        copier(store, expired).copy(instances)
    assert "refused access" in str(failed.value)
    assert sas.split("sig=")[1] not in str(failed.value)


def test_fault_policy_is_the_one_place_that_decides():
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

    from shared.stores.interface import InstanceChangedOrGone

    assert "deleted or replaced" in fault_policy(InstanceChangedOrGone("x"), "source")
    assert fault_policy(ServiceRequestError("connection refused"), "source") is None
    assert fault_policy(ResourceNotFoundError("ContainerNotFound"), "destination") is None
    forbidden = HttpResponseError("forbidden")
    forbidden.status_code = 403
    assert fault_policy(forbidden, "destination") is None
    leased = HttpResponseError("lease")
    leased.status_code, leased.error_code = 412, "LeaseIdMissing"
    assert "could not be written" in fault_policy(leased, "destination")


def test_empty_batch_copies_nothing(store, destination):
    assert copier(store, destination).copy([]).exported == 0


@pytest.fixture(scope="module")
def other_account(tmp_path_factory: pytest.TempPathFactory) -> Azurite:
    """Another storage service: Azurite refuses to copy from an account it does not hold."""
    other = Azurite(tmp_path_factory.mktemp("other") / "data", free_port()).start()
    yield other
    other.stop()


@pytest.mark.parametrize("mode", ["server", "auto"])
def test_server_copy_refused_across_accounts_falls_back_to_streaming(store, other_account, mode, monkeypatch):
    remote = parse_destination(POLICY, connection_string=other_account.connection_string,
                               container_name=f"remote-{mode}")
    remote.container_client().create_container()
    stored = put_series(store, "1.2", "1.2.3", 6)
    refused = []
    original = BatchCopier._server_copy

    def server_copy(self, *args):
        try:
            return original(self, *args)
        except Exception as error:
            refused.append(type(error).__name__)
            raise

    monkeypatch.setattr(BatchCopier, "_server_copy", server_copy)
    result = copier(store, remote, mode, threads=1).copy(list(store.iter_instances(Identifier("1.2"))))
    assert (result.exported, result.skipped) == (6, 0)
    assert results(remote.container_client()) == stored
    assert refused == ["_CopyRefused"] * (6 if mode == "server" else 1)  # auto stops asking after one refusal


def test_a_deidentified_batch_always_streams_to_the_new_uids_paths(store, destination, monkeypatch):
    served = []
    monkeypatch.setattr(BatchCopier, "_server_copy", lambda self, *a: served.append(a))
    data = make_instance(study="1.2", series="1.2.3", sop="1.2.3.4", PatientName="Doe^Jane")
    store.put("1.2", "1.2.3", "1.2.3.4", io.BytesIO(data), len(data))
    pseudonyms = Pseudonyms(b"key")
    deidentifier = Deidentifier(Profile(), pseudonyms)
    batch = BatchCopier(store, destination.container_client(), OPERATION, lambda e: str(e), mode="server",
                        deidentifier=deidentifier)

    result = batch.copy(list(store.iter_instances(Identifier("1.2"))))

    new = pseudonyms.identifier(Identifier("1.2", "1.2.3", "1.2.3.4"))
    copied = results(destination.container_client())
    assert served == [] and list(copied) == [f"{new}.dcm"]
    # the manifest lists the de-identified file, at its new path, with the hash of its new bytes
    assert result.lines == [f"{hashlib.sha256(copied[f'{new}.dcm']).hexdigest()}  results/{new}.dcm\n"]
    assert md5_of(destination.container_client(), f"{OPERATION}/results/{new}.dcm") == hashlib.md5(
        copied[f"{new}.dcm"]).digest()
def md5_of(client: ContainerClient, name: str) -> bytes | None:
    stored = client.get_blob_client(name).get_blob_properties().content_settings.content_md5
    return bytes(stored) if stored else None


@pytest.mark.parametrize("mode", ["stream", "server"])
def test_every_copied_file_carries_its_content_md5_single_put_and_blocks_alike(store, destination, mode):
    small = put_series(store, "1.2", "1.2.3", 2, size=2000)
    large = put_series(store, "1.2", "1.2.4", 1, size=9 * 1024 * 1024 + 17)  # above SINGLE_PUT_SIZE: blocks
    [large_name] = large
    assert md5_of(store.container, large_name) is None  # the store sent it in blocks: Azure computed none
    instances = list(store.iter_instances(Identifier("1.2")))

    result = copier(store, destination, mode).copy(instances)

    client = destination.container_client()
    for name, data in {**small, **large}.items():
        assert md5_of(client, f"{OPERATION}/results/{name}") == hashlib.md5(data).digest(), name
    assert result.lines == [f"{hashlib.sha256(data).hexdigest()}  results/{name}\n"
                            for name, data in sorted({**small, **large}.items())]  # in the batch's order
    if mode == "stream":  # the large file went in blocks, the MD5 on their Put Block List
        assert len(client.get_blob_client(f"{OPERATION}/results/{large_name}").get_block_list()[0]) > 1


def chunked(data: bytes, size: int):
    """`data` in chunks of `size`, as a stream of unknown length (a DICOMweb reply) gives it."""
    yield from (data[i:i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("length", [0, 1000, SINGLE_PUT_SIZE, SINGLE_PUT_SIZE + 1, 3 * BLOCK_SIZE + 5])
@pytest.mark.parametrize("size_known", [True, False])
def test_upload_hashes_any_stream_known_size_or_not(destination, length, size_known):
    data = os.urandom(length)
    target = destination.container_client().get_blob_client(f"{OPERATION}/results/x-{length}-{size_known}.dcm")

    digests = upload(target, chunked(data, 1024 * 1024 + 7), DICOM_CONTENT, size=length if size_known else None)

    assert digests == Digests(length, hashlib.md5(data).digest(), hashlib.sha256(data).digest())
    assert target.download_blob().readall() == data
    properties = target.get_blob_properties()
    assert bytes(properties.content_settings.content_md5) == digests.md5
    assert properties.content_settings.content_type == "application/dicom"
    blocks = [block.size for block in target.get_block_list()[0]]
    if length <= SINGLE_PUT_SIZE:
        assert blocks == []  # one request
    else:  # blocks of at least BLOCK_SIZE, but for the last
        assert blocks and min(blocks[:-1], default=BLOCK_SIZE) >= BLOCK_SIZE and sum(blocks) == length


def test_a_server_copy_whose_content_disagrees_with_its_md5_is_refused(destination):
    target = destination.container_client().get_blob_client(f"{OPERATION}/results/bad.dcm")
    target.upload_blob(b"what arrived")
    target.set_http_headers(with_md5(DICOM_CONTENT, hashlib.md5(b"what was sent").digest()))
    with pytest.raises(ContentMismatch):
        hash_blob(target)


def test_a_rendering_that_fails_midway_leaves_none_of_its_frames(store, destination):
    raw = load(next(p for p in readable() if p.endswith("/SC_rgb_rle_2frame.dcm")))[1]
    last = raw.rfind(b"\xfe\xff\x00\xe0") + 8  # the second frame's fragment, which starts with its RLE header
    broken = raw[:last] + bytes(64) + raw[last + 64:]  # a header of no segments: frame 1 renders, frame 2 fails
    store.put("1.2", "1.2.3", "1.2.3.4", io.BytesIO(broken), len(broken))
    ErrorLog(destination.container_client(), OPERATION).create()
    batch = BatchCopier(store, destination.container_client(), OPERATION, lambda e: str(e),
                        output=OutputSpec(format="png"))

    result = batch.copy(list(store.iter_instances(Identifier("1.2"))))

    assert (result.exported, result.skipped, result.lines) == (0, 1, [])
    assert results(destination.container_client()) == {}
    (logged,) = error_lines(destination.container_client())
    assert "not written as png" in logged["error"] and "cannot be decoded" in logged["error"]
