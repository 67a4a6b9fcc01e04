"""What an export by query would take, without starting one: `POST /export/search` and `dicom-export search`.

For each query, the studies, series or instances (its level) it selects, with the instances in each,
counted the way the export counts them (the union of the queries, each instance once: an instance an
earlier query selects is that query's), up to `limit` of them per query.
"""

from __future__ import annotations

from typing import Any

from shared.export.expand import MAX_PAGE, Searched
from shared.query import Query
from shared.stores.interface import Store, StoredInstance


def preview(store: Store, queries: list[Query], limit: int) -> list[dict[str, Any]]:
    """Per query: {"query", "level", "matches": [{study[, series[, instance]], "instances"}], "instances",
    "more" (True when it selects more than `limit` matches: the counts then stop there), "dropped"}."""
    found = []
    for number, query in enumerate(queries):
        searched = Searched(number, query, tuple(queries[:number]))
        matches: dict[tuple[str, ...], int] = {}
        cursor, dropped, instances, more = None, 0, 0, False
        while True:
            page, cursor, page_dropped = searched.search(store, cursor, min(MAX_PAGE, 10 * limit))
            dropped += page_dropped
            for instance in page:
                unit = _unit(instance, query.level)
                if unit not in matches and len(matches) >= limit:
                    more = True
                    break
                matches[unit] = matches.get(unit, 0) + 1
                instances += 1
            if more or not cursor:
                break
        found.append({"query": query.to_json(), "level": query.level, "instances": instances, "more": more,
                      "dropped": dropped, "matches": [
                          {**dict(zip(("study", "series", "instance"), unit)), "instances": count}
                          for unit, count in matches.items()]})
    return found


def _unit(instance: StoredInstance, level: str) -> tuple[str, ...]:
    parts = (instance.study, instance.series, instance.instance)
    return parts[: ("study", "series", "instance").index(level) + 1]
