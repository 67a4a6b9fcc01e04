"""The store's own operations against Azurite: put, download (pinned or not), exists, delete."""

from __future__ import annotations

import io
import os

import pytest
from pydicom.uid import generate_uid

from shared.stores.blob.store import blob_name
from shared.stores.interface import InstanceChangedOrGone
from shared.transfer import BLOCK_SIZE, SINGLE_PUT_SIZE
from shared.uids import Identifier


class ReadRecorder(io.BytesIO):
    """A stream that remembers the largest read asked of it: how much one upload holds at once."""

    largest = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.largest = max(self.largest, len(data))
        return data


def put(store, data: bytes, study=None, series=None, sop=None):
    uids = (study or generate_uid(), series or generate_uid(), sop or generate_uid())
    return store.put(*uids, io.BytesIO(data), len(data))


def test_put_then_download_is_byte_identical_and_typed(store):
    data = os.urandom(2 * BLOCK_SIZE + 123)
    stored = put(store, data)
    download = store.download(stored.blob_name, etag=stored.etag)
    assert (download.size, download.etag) == (len(data), stored.etag)
    assert b"".join(download.chunks()) == data
    properties = store.container.get_blob_client(stored.blob_name).get_blob_properties()
    assert properties.content_settings.content_type == "application/dicom"


def test_put_reads_one_block_at_a_time(store):
    data = ReadRecorder(os.urandom(3 * BLOCK_SIZE))
    store.put(generate_uid(), generate_uid(), generate_uid(), data, len(data.getvalue()))
    assert 0 < data.largest <= BLOCK_SIZE
    small = ReadRecorder(b"x" * 1000)
    store.put(generate_uid(), generate_uid(), generate_uid(), small, 1000)
    assert small.largest <= SINGLE_PUT_SIZE


def test_put_replaces_an_earlier_version(store):
    first = put(store, b"first")
    second = put(store, b"second", first.study, first.series, first.instance)
    assert second.etag != first.etag
    assert b"".join(store.download(first.blob_name).chunks()) == b"second"


def test_download_pinned_to_a_replaced_version_says_changed(store):
    first = put(store, b"first")
    put(store, b"second", first.study, first.series, first.instance)
    with pytest.raises(InstanceChangedOrGone, match="changed or was deleted since it was listed"):
        store.download(first.blob_name, etag=first.etag)


def test_download_of_a_deleted_instance_says_gone(store):
    first = put(store, b"first")
    store.delete(first.identifier)
    with pytest.raises(InstanceChangedOrGone, match="changed or was deleted since it was listed"):
        store.download(first.blob_name, etag=first.etag)
    with pytest.raises(InstanceChangedOrGone, match="not in the store"):
        store.download(first.blob_name)


def test_download_before_anything_is_stored_says_not_in_store(store):
    with pytest.raises(InstanceChangedOrGone):
        store.download(blob_name("1.2", "1.3", "1.4"))


def test_exists(store):
    assert not store.exists("1.2", "1.3", "1.4")  # not even a container yet
    stored = put(store, b"x")
    assert store.exists(stored.study, stored.series, stored.instance)
    assert not store.exists(stored.study, stored.series, "1.4")


def test_delete_counts_what_it_removed_at_each_level(store):
    study, other_study = generate_uid(), generate_uid()
    series_a, series_b = generate_uid(), generate_uid()
    a = [put(store, b"a", study, series_a) for _ in range(3)]
    [put(store, b"b", study, series_b) for _ in range(2)]
    kept = put(store, b"c", other_study)
    assert store.delete(a[0].identifier) == 1
    assert store.delete(Identifier(study, series_a)) == 2
    assert store.delete(Identifier(study)) == 2
    assert store.delete(Identifier(study)) == 0
    assert [found.instance for found in store.iter_instances(Identifier(other_study))] == [kept.instance]


def test_delete_of_more_than_one_page_and_batch(store):
    study, series = generate_uid(), generate_uid()
    for _ in range(400):
        put(store, b"x", study, series)
    assert store.delete(Identifier(study), page_size=300) == 400
    assert list(store.iter_instances(Identifier(study))) == []


def test_delete_on_a_store_never_written_matches_nothing(store):
    assert store.delete(Identifier("1.2")) == 0


@pytest.mark.parametrize("bad", ["..", "1.2/../3", "1.2.a", "", "1." + "2" * 70])
def test_nothing_escapes_the_layout(store, bad):
    with pytest.raises(ValueError):
        store.put(bad, "1.2", "1.3", io.BytesIO(b"x"), 1)
    with pytest.raises(ValueError):
        store.download(f"{bad}/1.2/1.3.dcm")
