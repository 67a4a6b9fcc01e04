"""The built-in blob store listed as an export's lanes: study key ranges that cover it once (Azurite)."""

from __future__ import annotations

from shared.stores.blob.store import DicomStore
from testkit.lanes import assert_lanes_cover_the_store

from .conftest import put_series


def test_study_key_ranges_cover_the_blob_store_once_and_a_lane_stops_listing_past_its_end(store: DicomStore):
    """Studies whose UIDs are prefixes of one another (1.2.3, 1.2.3.4, 1.2.30) list in blob-name order, not UID
    order; the ranges follow that order, so no instance falls between two lanes."""
    for study, count in (("1.2.3", 3), ("1.2.3.4", 2), ("1.2.30", 2), ("1.2.4", 3), ("1.3", 2), ("2.25.7", 3)):
        put_series(store, study, f"{study}.1", count)
    parts = assert_lanes_cover_the_store(store, 3)
    assert [len(p) for p in parts] == [5, 5, 5]
    last = parts[0][-1]
    first_of_next = parts[1][0]
    assert last < first_of_next  # lanes are consecutive stretches of the listing
