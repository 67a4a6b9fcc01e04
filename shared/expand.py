"""Expand identifiers into batches of stored instances, one generation's worth at a time.

The store is listed by prefix page by page with a cursor, never all at once: a study larger than
a generation holds is resumed from the cursor in the next one. An identifier that matches
nothing becomes a not-found entry (one skipped file and one errors.log line).
"""

from __future__ import annotations

from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError

from .store import DicomStore, StoredInstance, parse_blob_name
from .uids import Identifier

MAX_PAGE = 5000  # the most a blob listing returns per request


@dataclass(frozen=True)
class Expansion:
    batches: list[list[StoredInstance]]
    not_found: list[Identifier]
    consumed: int  # how many of the given identifiers are finished
    cursor: str | None  # where to resume listing the next unfinished one

    def to_json(self) -> dict:
        return {
            "batches": [[instance_to_json(i) for i in batch] for batch in self.batches],
            "notFound": len(self.not_found),
            "consumed": self.consumed,
            "cursor": self.cursor,
        }


def expand(store: DicomStore, identifiers: list[Identifier], cursor: str | None,
           batch_size: int, max_batches: int) -> Expansion:
    """Up to `max_batches` batches of at most `batch_size` instances, from `identifiers` in order.

    `cursor` resumes the listing of `identifiers[0]` where the previous generation stopped.
    """
    capacity = batch_size * max_batches
    found: list[StoredInstance] = []
    not_found: list[Identifier] = []
    consumed = 0
    while consumed < len(identifiers) and len(found) < capacity:
        identifier = identifiers[consumed]
        try:
            page, next_cursor = store.list_page(identifier, cursor, min(capacity - len(found), MAX_PAGE))
        except ResourceNotFoundError:  # no store container yet: nothing was ever stored
            page, next_cursor = [], None
        if not page and cursor is None and next_cursor is None:
            not_found.append(identifier)
        found.extend(page)
        if next_cursor:
            cursor = next_cursor
        else:
            consumed, cursor = consumed + 1, None
    batches = [found[i:i + batch_size] for i in range(0, len(found), batch_size)]
    return Expansion(batches, not_found, consumed, cursor)


def instance_to_json(instance: StoredInstance) -> list:
    """The compact form an instance travels in between activities: [blob name, etag, size]."""
    return [instance.blob_name, instance.etag, instance.size]


def instance_from_json(data: list) -> StoredInstance:
    name, etag, size = data
    parsed = parse_blob_name(name)
    if parsed is None:
        raise ValueError(f"not an instance blob name: {name!r}")
    return StoredInstance(*parsed, size=size, etag=etag)
