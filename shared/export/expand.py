"""Expand identifiers into batches of stored instances, one generation's worth at a time.

Whichever the store (`shared.stores.interface.Store`), it is listed page by page with a cursor,
never all at once: a study, or the whole store (the identifier None), larger than a generation
holds is resumed from the cursor in the next one. An identifier that matches nothing becomes a
not-found entry (one skipped file and one errors.log line); an empty store is simply empty.

A query (`Searched`) is searched the same way (`Store.search_page`), page by page with its cursor. The
export takes the union of its queries, each instance once: an instance that an earlier query of the
same export also selects is left to that one (judged on the attributes the store returned with it).
"""

from __future__ import annotations

import functools
import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shared.export.work import Expanded
from shared.query import Query
from shared.stores.interface import Store, StoredInstance, StudyRange, parse_blob_name
from shared.uids import Identifier

MAX_PAGE = 5000  # the most asked of one listing (a blob listing's own maximum)
READ_AHEAD = 16  # the most identifiers listed at once


@dataclass(frozen=True)
class Searched:
    """Query number `index` of an export, with the queries before it (what it selects too is theirs)."""

    index: int
    query: Query
    earlier: tuple[Query, ...] = ()

    @property
    def include(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for q in self.earlier for k in q.matches))

    def search(self, store: Store, cursor: str | None, page_size: int) -> tuple[list[StoredInstance], str | None, int]:
        """A page of what this query selects and no earlier one does, the next cursor, and the rows dropped."""
        page = store.search_page(self.query, cursor, page_size, self.include)
        kept = [instance for instance, attributes in page.instances
                if not any(q.selects(attributes) for q in self.earlier)]
        return kept, page.cursor, page.dropped


Item = Identifier | Searched | StudyRange | None  # None: the whole store; StudyRange: a lane's part of it


@dataclass(frozen=True)
class Expansion:
    batches: list[list[StoredInstance]]
    not_found: list[Identifier]  # never the whole store (None): an empty store has nothing to miss
    consumed: int  # how many of the given identifiers are finished
    cursor: str | None  # where to resume listing the next unfinished one
    searched: dict[int, list[int]] = field(default_factory=dict)  # query index -> [instances taken, rows dropped]

    def expanded(self) -> Expanded:
        """The form the expand activity returns."""
        return Expanded(tuple(tuple(instance_to_json(i) for i in batch) for batch in self.batches),
                        len(self.not_found), self.consumed, self.cursor,
                        {str(index): counts for index, counts in self.searched.items()} or None)

    def to_json(self) -> dict:
        return self.expanded().to_json()


def _list(store: Store, item: Item, cursor: str | None, page_size: int) -> tuple[list[StoredInstance], str | None, int]:
    if isinstance(item, Searched):
        return item.search(store, cursor, page_size)
    if isinstance(item, StudyRange):
        return (*store.list_range(item, cursor, page_size), 0)
    return (*store.list_page(item, cursor, page_size), 0)


def expand(store: Store, identifiers: list[Item], cursor: str | None,
           batch_size: int, max_batches: int, threads: int = 1) -> Expansion:
    """Up to `max_batches` batches of at most `batch_size` instances, from `identifiers` in order.

    A generation that finds fewer than it could hold (a small export, the last generation of any) is spread
    over up to `max_batches` even batches of at least `threads` instances, so every copy activity and its
    `threads` copies have work: 300 instances go as 10 batches of 30 rather than 3 of 100.

    `cursor` resumes the listing of `identifiers[0]` where the previous generation stopped. Identifiers
    are listed a window at a time, in parallel (1, then 2, 4 ... READ_AHEAD of them while they keep
    fitting, and no more than the room left likely holds), so a generation of many small studies or
    single instances costs a few round trips instead of one per identifier, and a generation inside one
    big study no more than one listing.
    """
    capacity = batch_size * max_batches
    found: list[StoredInstance] = []
    not_found: list[Identifier] = []
    searched: dict[int, list[int]] = {}
    consumed, window = 0, 1
    with ThreadPoolExecutor(READ_AHEAD) as pool:
        while consumed < len(identifiers) and len(found) < capacity:
            ahead = identifiers[consumed:consumed + window]
            starts = [cursor] + [None] * (len(ahead) - 1)
            page_size = min(capacity - len(found), MAX_PAGE)
            listed = pool.map(functools.partial(_list, store, page_size=page_size), ahead, starts)
            for identifier, start, (page, next_cursor, dropped) in zip(ahead, starts, listed):
                room = capacity - len(found)
                if len(page) > room:  # listed ahead of what fits: list again exactly what fits
                    page, next_cursor, dropped = _list(store, identifier, start, room)
                if isinstance(identifier, Searched):
                    counts = searched.setdefault(identifier.index, [0, 0])
                    counts[0], counts[1] = counts[0] + len(page), counts[1] + dropped
                elif not page and start is None and next_cursor is None and isinstance(identifier, Identifier):
                    not_found.append(identifier)
                found.extend(page)
                if next_cursor:  # more under this identifier: resume from there
                    cursor = next_cursor
                    break
                consumed, cursor = consumed + 1, None
                if len(found) >= capacity:
                    break
            window = min(2 * window, READ_AHEAD, _likely_to_fit(capacity - len(found), len(found), consumed))
    found = list({i.blob_name: i for i in found}.values())  # a store listed by offset may repeat one as it changes
    return Expansion(_spread(found, batch_size, max_batches, threads), not_found, consumed, cursor, searched)


def _spread(found: list[StoredInstance], batch_size: int, max_batches: int, threads: int) -> list[list[StoredInstance]]:
    """`found` in order, cut into as many even batches as keep each within `batch_size` and, up to
    `max_batches`, at least `threads` long."""
    count = max(-(-len(found) // batch_size), min(max_batches, -(-len(found) // max(1, threads))))
    size, longer = divmod(len(found), count) if count else (0, 0)
    starts = [n * size + min(n, longer) for n in range(count + 1)]
    return [found[start:end] for start, end in itertools.pairwise(starts)]


def _likely_to_fit(room: int, found: int, consumed: int) -> int:
    """How many more identifiers `room` instances likely hold, at the average size of those consumed so far.

    Listing further ahead only fetches and parses pages to throw them away.
    """
    return max(1, -(-room * consumed // found)) if found and consumed else READ_AHEAD


def instance_to_json(instance: StoredInstance) -> list:
    """The compact form an instance travels in between activities: [blob name, etag, size]."""
    return [instance.blob_name, instance.etag, instance.size]


def instance_from_json(data: list) -> StoredInstance:
    name, etag, size = data
    parsed = parse_blob_name(name)
    if parsed is None:
        raise ValueError(f"not an instance blob name: {name!r}")
    return StoredInstance(*parsed, size=size, etag=etag)
