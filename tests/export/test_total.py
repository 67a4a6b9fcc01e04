"""The total an export will count (`results.total`): given only once it is sure, and then exact."""

from __future__ import annotations

from shared.export.checkpoint import WHOLE_STORE, Batching, Checkpoint
from shared.export.work import Copied, Expanded

BATCHING = Batching(2, 2, 1, 2, 0.1, 1)


def checkpoint(*identifiers: str) -> Checkpoint:
    return Checkpoint("op", identifiers, {}, BATCHING, "2024-01-01T00:00:00Z", "href")


def batch(*names: str) -> tuple[list, ...]:
    return tuple([f"{name}.dcm", None, None] for name in names)


def test_an_export_of_instances_knows_its_total_from_the_start():
    start = checkpoint("1.2/1.3/1.4", "1.2/1.3/1.5", "1.2/1.3/1.6")
    assert start.total == 3 and start.status()["total"] == 3


def test_an_export_of_studies_knows_it_once_its_last_listing_is_done_and_it_is_what_the_counts_end_at():
    start = checkpoint("1.2", "1.9/1.3/1.4")
    assert start.total is None and "total" not in start.status()
    # Generation 1 lists 4 of the study's instances (more are left: a cursor), and copies them; 1 is skipped.
    first = Expanded((batch("1.2/1.3/1.10", "1.2/1.3/1.11"), batch("1.2/1.3/1.12", "1.2/1.3/1.13")), 0, 0, "4")
    # Meanwhile the look-ahead lists the rest: 1 more instance of the study, then the instance, which is missing.
    rest = Expanded((batch("1.2/1.3/1.14"),), 1, 2, None)
    after = start.advance(first, [Copied(2, 0), Copied(1, 1)], rest)
    assert after.total == 4 + 1 + 1 and after.status()["total"] == 6
    end = after.advance(rest, [Copied(1, 0)])
    assert end.done and end.total == end.exported + end.skipped == 6


def test_the_whole_store_and_a_partly_listed_study_are_unknown():
    assert checkpoint(WHOLE_STORE).total is None
    listing = Expanded((batch("1.2/1.3/1.10"),), 0, 0, "1")  # a study listed in part
    assert checkpoint("1.2").advance(listing, [], listing).total is None
