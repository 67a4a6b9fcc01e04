"""Expanding identifiers into batches against Azurite: bounded generations, cursors, not-found entries."""

from __future__ import annotations

from shared.export.expand import expand, instance_from_json, instance_to_json
from shared.uids import Identifier

from .conftest import put, put_series


def test_study_series_and_instance_identifiers_expand_to_exactly_their_instances(store):
    put_series(store, "1.2", "1.2.3", 3)
    put_series(store, "1.2", "1.2.4", 2)
    put_series(store, "1.23", "1.23.1", 2)  # same prefix characters, another study
    put(store, "5.6", "5.6.7", "5.6.7.8")
    put(store, "5.6", "5.6.7", "5.6.7.80")  # an instance UID extending the one asked for

    expansion = expand(store, [Identifier("1.2"), Identifier("1.23", "1.23.1"), Identifier("5.6", "5.6.7", "5.6.7.8")],
                       None, batch_size=3, max_batches=10, threads=3)

    names = [i.blob_name for batch in expansion.batches for i in batch]
    assert sorted(names) == sorted([
        "1.2/1.2.3/1.2.3.1.dcm", "1.2/1.2.3/1.2.3.2.dcm", "1.2/1.2.3/1.2.3.3.dcm", "1.2/1.2.4/1.2.4.1.dcm",
        "1.2/1.2.4/1.2.4.2.dcm", "1.23/1.23.1/1.23.1.1.dcm", "1.23/1.23.1/1.23.1.2.dcm", "5.6/5.6.7/5.6.7.8.dcm"])
    assert [len(b) for b in expansion.batches] == [3, 3, 2]
    assert (expansion.consumed, expansion.cursor, expansion.not_found) == (3, None, [])


def test_a_generation_that_finds_less_than_it_holds_is_spread_over_every_batch_it_may_use(store):
    put_series(store, "1.2", "1.2.3", 23)
    spread = expand(store, [Identifier("1.2")], None, batch_size=10, max_batches=5, threads=2)
    assert [len(b) for b in spread.batches] == [5, 5, 5, 4, 4]  # not 10, 10, 3: five activities, all busy
    names = [i.blob_name for b in spread.batches for i in b]
    assert names == sorted(names) and len(set(names)) == 23  # each once, in listing order
    few = expand(store, [Identifier("1.2")], None, batch_size=10, max_batches=5, threads=8)
    assert [len(b) for b in few.batches] == [8, 8, 7]  # no batch shorter than an activity's threads need


def test_a_study_larger_than_a_generation_resumes_from_its_cursor(store):
    put_series(store, "1.2", "1.2.3", 23)
    identifiers = [Identifier("1.2"), Identifier("9.9")]
    seen, cursor, generations = [], None, 0
    while identifiers:
        expansion = expand(store, identifiers, cursor, batch_size=4, max_batches=2)
        assert sum(len(b) for b in expansion.batches) <= 8
        seen += [i.blob_name for b in expansion.batches for i in b]
        identifiers, cursor = identifiers[expansion.consumed:], expansion.cursor
        generations += 1
    assert len(seen) == len(set(seen)) == 23
    assert generations == 3  # 8 + 8 + 7, then 9.9 (not found) in the same generation as the last 7


def test_unknown_identifiers_become_not_found_entries(store):
    put_series(store, "1.2", "1.2.3", 2)
    unknown = [Identifier("7.7"), Identifier("1.2", "1.2.9"), Identifier("1.2", "1.2.3", "1.2.3.99")]
    expansion = expand(store, [Identifier("1.2"), *unknown], None, batch_size=10, max_batches=1)
    assert expansion.not_found == unknown
    assert expansion.to_json()["notFound"] == 3


def test_a_store_without_its_container_finds_nothing(store):
    store.container.delete_container()
    assert expand(store, [Identifier("1.2")], None, 10, 1).not_found == [Identifier("1.2")]


def test_instances_travel_as_compact_json(store):
    instance, _ = put(store, "1.2", "1.2.3", "1.2.3.4")
    assert instance_from_json(instance_to_json(instance)) == instance
