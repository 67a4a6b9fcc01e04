"""Lanes: one export split into `Export__Lanes` orchestrations over disjoint parts of its source, still one operation.

How the source is cut:
- identifiers, and queries (`?<n>`), by list position: contiguous parts, as even as they go, at most one per item;
- the whole store by key ranges of the study UID (`StudyRange`), cut where each lane gets about as many instances
  (`study_bounds`, from one listing of the store that `count_studies` reads).

Each lane is the export orchestration on a checkpoint of its own (`Checkpoint.lane`, instance id `lane_id`): it
numbers its generations from `first_generation(lane)`, so its manifest blocks are its own, and it ends by returning
its status instead of committing. Its parent commits the one manifest once every lane has ended (`commit_work`),
and the operation's progress is the lanes' statuses added up (`summed`).

    >>> parts(("a", "b", "c", "d", "e"), 3)
    [('a', 'b'), ('c', 'd'), ('e',)]
    >>> ranges(["1.5", "1.9"])
    [StudyRange(low=None, high='1.5'), StudyRange(low='1.5', high='1.9'), StudyRange(low='1.9', high=None)]
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from shared.export.checkpoint import WHOLE_STORE, Checkpoint
from shared.export.manifest import first_generation
from shared.export.work import CommitWork
from shared.stores.interface import Store, StudyRange, study_key

LANE = "-lane"  # a lane's instance id: `<operation id>-lane<n>`
LISTING_PAGE = 5000  # instances per page of the listing that picks the bounds


def lane_id(operation_id: str, lane: int) -> str:
    """The lane's instance id: derived from the operation's, so a replay, a cancel and a status find the same one."""
    return f"{operation_id}{LANE}{lane}"


def parts(items: Sequence[str], lanes: int) -> list[tuple[str, ...]]:
    """`items` cut by position into min(lanes, len(items)) contiguous parts whose lengths differ by one at most."""
    count = max(1, min(lanes, len(items)))
    size, longer = divmod(len(items), count)
    starts = [n * size + min(n, longer) for n in range(count + 1)]
    return [tuple(items[start:end]) for start, end in itertools.pairwise(starts)]


def ranges(bounds: Sequence[str]) -> list[StudyRange]:
    """The key ranges that `bounds` (the first study of lanes 2, 3 ...) cut the store into, in order."""
    edges: list[str | None] = [None, *bounds, None]
    return [StudyRange(low, high) for low, high in itertools.pairwise(edges)]


def range_text(studies: StudyRange) -> str:
    """The checkpoint identifier of a lane's part of the whole store: `*<low>,<high>` (`*` when unbounded)."""
    if studies.low is None and studies.high is None:
        return WHOLE_STORE
    return f"{WHOLE_STORE}{studies.low or ''},{studies.high or ''}"


def parse_range(text: str) -> StudyRange:
    low, _, high = text[len(WHOLE_STORE):].partition(",")
    return StudyRange(low or None, high or None)


def count_studies(store: Store) -> Counter[str]:
    """How many instances each study of the store holds: one listing of the whole store."""
    counts: Counter[str] = Counter()
    cursor: str | None = None
    while True:
        page, cursor = store.list_page(None, cursor, LISTING_PAGE)
        counts.update(instance.study for instance in page)
        if not cursor:
            return counts


def study_bounds(counts: Mapping[str, int], lanes: int) -> list[str]:
    """The first study of each lane after the first, in key order, so each holds about 1/lanes of the instances.

    A study is never cut: one larger than a lane's share fills its lane alone, and no lane is empty.
    """
    total = sum(counts.values())
    bounds: list[str] = []
    running = 0
    for study in sorted(counts, key=study_key):
        if running and len(bounds) < lanes - 1 and running * lanes >= (len(bounds) + 1) * total:
            bounds.append(study)
        running += counts[study]
    return bounds


def lane_checkpoints(parent: Checkpoint, bounds: Sequence[str] = ()) -> list[Checkpoint]:
    """The first checkpoint of each lane of `parent` (bounds: a whole store's, from `study_bounds`), or of a retried
    parent, where each lane stopped."""
    if parent.lane_inputs:
        return [Checkpoint.from_json(data) for data in parent.lane_inputs]
    if parent.identifiers == (WHOLE_STORE,):
        pieces: list[tuple[str, ...]] = [(range_text(studies),) for studies in ranges(bounds)]
    else:
        pieces = parts(parent.identifiers, parent.lanes)
    return [replace(parent, identifiers=piece, lane=n, generation=first_generation(n), cursor=None, prefetched=None,
                    notification=None)  # the parent notifies the operation's end, once
            for n, piece in enumerate(pieces)]


def retried(parent: Checkpoint, lanes: Sequence[Mapping[str, Any] | None]) -> Checkpoint:
    """The parent to start again when a failed or canceled export run as lanes is retried, given its lanes' current
    checkpoints (None: not started). Each lane resumes from its own, its failure cleared and its look-ahead dropped
    (listed again): a lane that had completed runs its last generation again, which changes no count or block.
    Without every lane, the lanes start afresh (the parent had not started them)."""
    inputs = tuple(replace(Checkpoint.from_json(dict(lane)), failure=None, prefetched=None).to_json()
                   for lane in lanes if lane)
    return replace(parent, failure=None, lane_inputs=inputs if lanes and len(inputs) == len(lanes) else ())


def summed(base: Mapping[str, Any], lanes: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The operation's status: `base` (the parent's) with the lanes' progress added up; a lane not yet started
    counts nothing. `generation` is how many generations the lanes have run, `error` the first lane's failure,
    `total` the lanes' once each knows its own."""
    status = {**base, "exported": 0, "skipped": 0, "generation": 0}
    queries = [dict(q, selected=0, dropped=0) for q in base.get("queries") or []]
    for number, lane in enumerate(lanes):
        if not lane:
            continue
        status["exported"] += int(lane.get("exported") or 0)
        status["skipped"] += int(lane.get("skipped") or 0)
        status["generation"] += max(0, int(lane.get("generation") or 0) - first_generation(number) + 1)
        for total, counted in zip(queries, lane.get("queries") or []):
            total["selected"] += counted["selected"]
            total["dropped"] += counted["dropped"]
        if lane.get("error") and "error" not in status:
            status["error"] = lane["error"]
    if queries:
        status["queries"] = queries
    totals = [lane.get("total") if lane else None for lane in lanes]
    if totals and all(isinstance(t, int) for t in totals):  # else the parent's, known from the start or not at all
        status["total"] = sum(t for t in totals if isinstance(t, int))
    return status


def commit_work(parent: Checkpoint, lanes: Sequence[Mapping[str, Any]]) -> CommitWork:
    """The parent's commit once every lane has returned its status: all they staged, or after a lane failed, each
    lane's completed generations (those its counts count) and no metadata table (as any failed export)."""
    dropped = sum(q["dropped"] for lane in lanes for q in lane.get("queries") or [])
    work = replace(parent.commit_input(), dropped=dropped)  # the destination, outputs and linkage table too
    if not any(lane.get("error") for lane in lanes):
        return work
    return replace(work, lane_ends=tuple(int(lane["generation"]) if lane.get("error") else first_generation(n + 1)
                                         for n, lane in enumerate(lanes)))


def canceled_work(parent: Checkpoint, lanes: Sequence[tuple[str, Mapping[str, Any], Any] | None]) -> CommitWork:
    """The commit of a canceled export run as lanes, each lane suspended or ended: (its runtime status, its current
    checkpoint, the custom status it last published) or None if it never started. A completed lane's blocks are
    all kept; another's those of the generations its status counts (a lane may count past its checkpoint's)."""
    ends = []
    for number, lane in enumerate(lanes):
        if lane is None:
            ends.append(first_generation(number))
            continue
        runtime, checkpoint, published = lane
        counted = [checkpoint.get("generation"), published.get("generation") if isinstance(published, dict) else None]
        ends.append(first_generation(number + 1) if runtime == "Completed"
                    else max([int(g) for g in counted if isinstance(g, int)] or [first_generation(number)]))
    return replace(parent.commit_input(), dropped=0, lane_ends=tuple(ends))
