"""The built-in store's index: each instance's matchable attributes, kept in its own blob's metadata.

STOW-RS reads them from the header it checks anyway and writes them with the blob in the same request, so
the index and the blobs cannot drift apart: there is no second write to fail, no delete to order, no
table to repair. A blob without it (stored before the index existed, or copied into the container by
other means) is still found: a search reads that blob's header instead (shared/stores/blob/search.py).

The metadata value is the attributes as JSON, percent-encoded (metadata travels as HTTP headers: ASCII).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from pydicom.datadict import tag_for_keyword

from shared.query import attributes_from_dataset
from shared.query.query import MATCHABLE

KEY = "dicomindex"  # the metadata name
MAX_VALUE = 7 * 1024  # a blob's metadata is at most 8 KiB in all: an instance past this goes unindexed
# Every matchable attribute an instance carries; the UIDs of its name and ModalitiesInStudy (a study's,
# computed at search time) are not needed.
INDEXED = tuple(k for keywords in MATCHABLE.values() for k in keywords
                if k not in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "ModalitiesInStudy"))
TAGS = tuple(tag for tag in map(tag_for_keyword, INDEXED) if tag is not None)


def index_metadata(dataset: Any) -> dict[str, str]:
    """The metadata that indexes an instance whose header is `dataset` (empty if it would not fit)."""
    found = {k: v for k, v in attributes_from_dataset(dataset).items() if k in INDEXED and v}
    value = quote(json.dumps(found, separators=(",", ":"), ensure_ascii=False), safe="")
    return {KEY: value} if len(value) <= MAX_VALUE else {}


def indexed_attributes(metadata: Mapping[str, str] | None) -> dict[str, list[str]] | None:
    """The attributes a blob's metadata holds, or None when it holds no index (or a damaged one)."""
    value = next((v for k, v in (metadata or {}).items() if k.lower() == KEY), None)
    if value is None:
        return None
    try:
        found = json.loads(unquote(value))
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
