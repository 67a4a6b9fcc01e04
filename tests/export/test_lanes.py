"""Cutting one export into lanes and adding their progress up (shared/export/lanes.py): pure, no host, no store."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.errors import Misconfigured
from shared.export import lanes
from shared.export.checkpoint import WHOLE_STORE, Batching, Checkpoint
from shared.export.manifest import first_generation
from shared.export.settings import ExportSettings
from shared.stores.interface import StudyRange

PARENT = Checkpoint("0" * 32, ("1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7"), {"container": "out"},
                    Batching(10, 2, 1, 1, 1.0, 1.0), "2026-01-01T00:00:00Z", "https://x/out/op/errors.log", lanes=3)


def test_identifiers_are_cut_by_position_into_contiguous_parts_that_cover_them_once():
    firsts = lanes.lane_checkpoints(PARENT)
    assert [c.identifiers for c in firsts] == [("1.1", "1.2", "1.3"), ("1.4", "1.5"), ("1.6", "1.7")]
    assert [(c.lane, c.generation, c.lanes) for c in firsts] == [(0, 1, 3), (1, 10_000_001, 3), (2, 20_000_001, 3)]
    assert [lanes.lane_id(PARENT.operation_id, c.lane or 0) for c in firsts] == [
        f"{'0' * 32}-lane{n}" for n in range(3)]


def test_fewer_items_than_lanes_make_fewer_lanes_and_never_an_empty_one():
    assert lanes.parts(("?0", "?1"), 3) == [("?0",), ("?1",)]
    assert lanes.parts(("a",), 8) == [("a",)]
    assert lanes.parts(tuple("abcdefghij"), 4) == [("a", "b", "c"), ("d", "e", "f"), ("g", "h"), ("i", "j")]


def test_a_query_source_keeps_every_query_so_a_later_lane_still_leaves_an_earlier_querys_instances_to_it():
    search = {"queries": [{"Modality": "CT"}, {"Modality": "MR"}], "counts": [[0, 0], [0, 0]]}
    parent = Checkpoint("0" * 32, ("?0", "?1"), {}, PARENT.batching, "t", "e", search=search, lanes=4)
    firsts = lanes.lane_checkpoints(parent)
    assert [(c.identifiers, c.search) for c in firsts] == [(("?0",), search), (("?1",), search)]


def test_a_whole_store_is_cut_into_study_key_ranges_that_hold_about_as_many_instances_each():
    counts = {"1.2.1": 10, "1.2.2": 10, "1.2.3": 10, "1.2.4": 10, "1.2.5": 10, "1.2.6": 10}
    bounds = lanes.study_bounds(counts, 3)
    assert bounds == ["1.2.3", "1.2.5"]
    parent = Checkpoint("0" * 32, (WHOLE_STORE,), {}, PARENT.batching, "t", "e", lanes=3)
    texts = [c.identifiers for c in lanes.lane_checkpoints(parent, bounds)]
    assert texts == [("*,1.2.3",), ("*1.2.3,1.2.5",), ("*1.2.5,",)]
    parsed = [lanes.parse_range(t) for (t,) in texts]
    assert parsed == lanes.ranges(bounds)
    assert [[s for s in counts if r.contains(s)] for r in parsed] == [["1.2.1", "1.2.2"], ["1.2.3", "1.2.4"],
                                                                       ["1.2.5", "1.2.6"]]


def test_a_study_is_never_cut_and_an_empty_or_single_study_store_is_one_lane():
    assert lanes.study_bounds({"1.1": 1000, "1.2": 1, "1.3": 1}, 3) == ["1.2", "1.3"]  # 1.1 fills a lane alone
    assert lanes.study_bounds({"1.1": 5}, 4) == []
    assert lanes.study_bounds({}, 4) == []
    assert lanes.range_text(StudyRange()) == WHOLE_STORE  # one lane over everything: the plain whole store


def test_key_ranges_order_studies_as_a_blob_listing_orders_their_instances():
    """`1.2.3.4/...` is listed before `1.2.3/...` ('.' sorts before '/'), so the range's order must be the same."""
    names = sorted(["1.2.3/a.dcm", "1.2.3.4/a.dcm", "1.2.30/a.dcm"])
    assert [n.split("/")[0] for n in names] == ["1.2.3.4", "1.2.3", "1.2.30"]
    studies = StudyRange("1.2.3.4", "1.2.30")
    assert [studies.place(s) for s in ("1.2.3.3", "1.2.3.4", "1.2.3", "1.2.30", "1.2.4")] == [-1, 0, 0, 1, 1]
    assert studies.prefix == "1.2.3"
    assert StudyRange(None, "1.5").prefix == ""


def test_the_operation_status_adds_the_lanes_up_and_a_lane_not_yet_started_counts_nothing():
    base = {"createdTime": "t", "errorHref": "e", "exported": 0, "skipped": 0, "generation": 1, "lanes": 3,
            "queries": [{"query": {"Modality": "CT"}, "selected": 0, "dropped": 0}]}
    ran = [{"exported": 5, "skipped": 1, "generation": 3, "queries": [{"query": {}, "selected": 6, "dropped": 1}]},
           {"exported": 2, "skipped": 0, "generation": first_generation(1) + 1, "error": "the store is down"},
           None]
    status = lanes.summed(base, ran)
    assert (status["exported"], status["skipped"], status["generation"], status["error"], status["lanes"]) == (
        7, 1, 5, "the store is down", 3)
    assert status["queries"] == [{"query": {"Modality": "CT"}, "selected": 6, "dropped": 1}]
    assert "total" not in status  # not every lane knows its own yet
    assert lanes.summed(base, [{"total": 7}, {"total": 5, "exported": 1}])["total"] == 12


def test_after_a_lane_failed_the_commit_keeps_each_lanes_completed_generations_and_all_of_the_others():
    ended = [{"generation": 4, "exported": 6}, {"generation": first_generation(1) + 2, "error": "down"},
             {"generation": first_generation(2) + 7}]
    work = lanes.commit_work(PARENT, ended)
    assert work.partial and work.lane_ends == (first_generation(1), first_generation(1) + 2, first_generation(3))
    assert not lanes.commit_work(PARENT, [{"generation": 4}]).partial
    canceled = lanes.canceled_work(PARENT, [("Completed", {}, None), ("Suspended", {"generation": 10_000_003}, None),
                                            ("Suspended", {"generation": 20_000_002}, {"generation": 20_000_004}),
                                            None])
    assert canceled.lane_ends == (first_generation(1), 10_000_003, 20_000_004, first_generation(3))


@pytest.mark.parametrize("value", ["0", "101", "-2"])
def test_export_lanes_out_of_range_is_refused_naming_the_setting(value: str):
    with pytest.raises(Misconfigured, match="Export__Lanes must be from 1 to 100"):
        ExportSettings.from_settings({"Export__Lanes": value})
    assert ExportSettings.from_settings({}).lanes == 1


def test_a_retry_resumes_each_lane_from_its_own_checkpoint_and_without_every_lane_starts_afresh():
    first, second = lanes.lane_checkpoints(replace(PARENT, lanes=2))
    stopped = replace(second, identifiers=("1.7",), generation=second.generation + 3, exported=40, failure="down")
    again = lanes.retried(PARENT, [first.to_json(), stopped.to_json()])
    resumed = lanes.lane_checkpoints(again)
    assert resumed == [first, replace(stopped, failure=None)]
    assert lanes.retried(PARENT, [first.to_json(), None]).lane_inputs == ()  # the lanes had not all started
    assert lanes.lane_checkpoints(lanes.retried(PARENT, [None, None])) == lanes.lane_checkpoints(PARENT)
