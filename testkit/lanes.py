"""Listing a store as an export's lanes would (shared/export/lanes.py), for the tests of each kind of store."""

from __future__ import annotations

from shared.export import lanes
from shared.stores.interface import Store, StudyRange


def listed_range(store: Store, studies: StudyRange | None, page_size: int) -> list[str]:
    """The instance names of `studies` (None: the whole store), page by page from the cursors."""
    found: list[str] = []
    cursor: str | None = None
    while True:
        if studies is None:
            page, cursor = store.list_page(None, cursor, page_size)
        else:
            page, cursor = store.list_range(studies, cursor, page_size)
        assert len(page) <= page_size
        found += [instance.blob_name for instance in page]
        if cursor is None:
            return found


def assert_lanes_cover_the_store(store: Store, count: int, page_size: int = 2) -> list[list[str]]:
    """The store cut into `count` lanes by study key ranges: each lane lists a part, no two share an instance, and
    together they list what the whole store's listing does. The lanes' names."""
    everything = listed_range(store, None, page_size)
    parts = [listed_range(store, studies, page_size)
             for studies in lanes.ranges(lanes.study_bounds(lanes.count_studies(store), count))]
    assert len(parts) == count and all(parts)
    assert sorted(n for part in parts for n in part) == sorted(everything)
    return parts
