"""The export orchestrator itself, fed built histories (tests/export/orchestrating.py): no host, no store."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from devhost import history as h
from orchestrations import export
from orchestrations.export import COMMIT, COPY, EXPAND
from shared.export.checkpoint import Batching, Checkpoint
from shared.export.work import Committed, CommitWork, Copied, CopyWork, Expanded, ExpandWork

from .orchestrating import NOW, Execution, run

DESTINATION = {"accountUrl": "https://account.blob.core.windows.net", "container": "out", "account": "account",
               "useManagedIdentity": True, "secret": None}
HREF = "https://account.blob.core.windows.net/out/op/manifest-sha256.txt"


def checkpoint(*identifiers: str, batch_size: int = 2, batches: int = 2, attempts: int = 1) -> Checkpoint:
    return Checkpoint("op", identifiers, DESTINATION, Batching(batch_size, batches, 1, attempts, 1.0, 2.0),
                      "2026-01-01T00:00:00Z", "https://account.blob.core.windows.net/out/op/errors.log")


def instances(study: str, count: int) -> tuple[list, ...]:
    return tuple([f"{study}/{study}.1/{study}.1.{n}.dcm", f"etag{n}", 10] for n in range(count))


def expanded(*batches: tuple[list, ...], not_found: int = 0, consumed: int = 1, cursor: str | None = None) -> Expanded:
    return Expanded(tuple(batches), not_found, consumed, cursor)


def copied(call) -> tuple[int, int]:
    work = CopyWork.from_json(call.input)
    return work.generation, work.batch


def test_the_window_starts_its_batches_then_lists_ahead_and_refills_a_slot_as_each_copy_finishes():
    run_ = Execution(checkpoint("1.2", "3.4", "5.6", batch_size=1, batches=2))
    (expand,) = run_.calls
    assert ExpandWork.from_json(expand.input).identifiers == ("1.2", "3.4")  # what one generation can reach
    run_.complete(expand, expanded(instances("1.2", 1), instances("3.4", 1), consumed=2).to_json())
    first, second, ahead = run_.running
    assert [c.name for c in (first, second, ahead)] == [COPY, COPY, EXPAND]  # the look-ahead comes last
    assert ExpandWork.from_json(ahead.input).identifiers == ("5.6",)
    assert run_.state["customStatus"]["generation"] == 1

    run_.complete(ahead, expanded(instances("5.6", 1), instances("5.6", 1)).to_json())
    assert len(run_.running) == 2  # both slots taken: the next generation's batches wait
    run_.complete(second, Copied(1, 0).to_json())
    (refill,) = [c for c in run_.running if c not in (first,)]
    assert (refill.name, copied(refill)) == (COPY, (2, 0))  # a free slot starts the next batch at once
    # ... yielded beside a zero-length timer (devhost/README.md's rule), which fired
    assert any(t.fire_at and h.parse_time(t.fire_at) == h.parse_time(NOW) for t in run_.timers)


def test_batches_finishing_out_of_order_are_counted_by_whole_generations_in_order():
    start = checkpoint("1.2", "3.4", batch_size=1, batches=2)
    run_ = Execution(start)
    run_.complete(run_.calls[0], expanded(instances("1.2", 1), instances("1.2", 1), consumed=1).to_json())
    first, second, ahead = run_.running
    run_.complete(ahead, expanded(instances("3.4", 1), not_found=1).to_json())
    run_.complete(second, Copied(1, 0).to_json())
    (refill,) = [c for c in run_.running if c is not first]
    run_.complete(refill, Copied(1, 0).to_json())  # generation 2 is copied before generation 1
    status = run_.state["customStatus"]
    assert (status["exported"], status["generation"]) == (0, 1)  # nothing counted until generation 1 is
    run_.complete(first, Copied(0, 1).to_json())
    (commit,) = run_.running
    assert commit.name == COMMIT and CommitWork.from_json(commit.input).before_generation is None
    run_.complete(commit, Committed(HREF, "ab" * 32, 120).to_json())
    assert run_.state["isDone"]
    assert run_.state["output"] == {**start.status(), "exported": 2, "skipped": 2, "generation": 3, "total": 4,
                                    "manifestHref": HREF, "manifestSha256": "ab" * 32, "manifestSize": 120}


def test_a_failed_copy_waits_for_a_retry_timer_then_runs_again_with_the_same_input():
    run_ = Execution(checkpoint("1.2", batch_size=1, batches=2, attempts=3))
    run_.complete(run_.calls[0], expanded(instances("1.2", 1), instances("1.2", 1)).to_json())
    failing, other = run_.running
    run_.fail(failing, "reading the DICOM store failed: connection refused")
    (wait,) = run_.waiting  # the first interval: 1 s after the failure
    assert h.parse_time(wait.fire_at) - h.parse_time(NOW) == timedelta(seconds=1)
    assert run_.running == [other] and not run_.state["isDone"]

    run_.fire(wait)
    again = run_.running[-1]
    assert (again.name, again.input) == (COPY, failing.input)
    run_.fail(again, "reading the DICOM store failed: connection refused")
    (second_wait,) = run_.waiting  # times the backoff coefficient
    assert h.parse_time(second_wait.fire_at) - h.parse_time(NOW) == timedelta(seconds=2)
    run_.fire(second_wait)
    run_.complete(run_.running[-1], Copied(1, 0).to_json())
    run_.complete(other, Copied(1, 0).to_json())
    (commit,) = run_.running
    assert commit.name == COMMIT


def test_retries_exhausted_hand_the_failure_to_a_run_from_the_first_uncounted_generation():
    start = checkpoint("1.2", "3.4", "5.6", batch_size=1, batches=2, attempts=2)
    run_ = Execution(start)
    first_listing = expanded(instances("1.2", 1), instances("3.4", 1), consumed=2)
    run_.complete(run_.calls[0], first_listing.to_json())
    failing, waiting_copy, ahead = run_.running
    run_.fail(waiting_copy, "destination: refused")  # this one waits for its retry when the other gives up
    run_.fail(failing, "destination: container 'out' does not exist")
    run_.fire(run_.waiting[-1])
    retried = run_.running[-1]
    assert copied(retried) == copied(failing)
    run_.fail(retried, "destination: container 'out' does not exist")

    following = run_.continued_as
    assert run_.state["isDone"] and following is not None  # decided at once, while the look-ahead still runs
    assert ahead in run_.running and not run_.waiting  # the other retry's timer is cancelled
    reason = "destination: container 'out' does not exist"
    assert following == Checkpoint.from_json({**start.to_json(), "prefetched": first_listing.to_json()}).failed(reason)
    assert run_.state["customStatus"]["error"] == reason and COMMIT not in [c.name for c in run_.calls]


def test_a_run_continues_as_new_after_its_generations_with_the_next_listing_prefetched(monkeypatch):
    monkeypatch.setattr(export, "RUN_GENERATIONS", 2)
    run_ = Execution(checkpoint("1.2", "3.4", "5.6", "7.8", batch_size=1, batches=1))
    listings = [expanded(instances(s, 1)) for s in ("1.2", "3.4", "5.6")]
    run_.complete(run_.calls[0], listings[0].to_json())
    for n in (1, 2):
        ahead = [c for c in run_.running if c.name == EXPAND]
        run_.complete(ahead[0], listings[n].to_json())
        (copy,) = [c for c in run_.running if c.name == COPY]
        assert copied(copy) == (n, 0)
        run_.complete(copy, Copied(1, 0).to_json())
    assert not run_.running  # generation 3 was listed, not copied: that is the next run's
    following = run_.continued_as
    assert following is not None and (following.generation, following.exported) == (3, 2)
    assert following.prefetched == listings[2] and following.identifiers == ("5.6", "7.8")

    nxt = Execution(following)  # the next run copies what was listed ahead without listing it again
    assert [c.name for c in nxt.calls] == [COPY, EXPAND] and copied(nxt.calls[0]) == (3, 0)


def test_the_commit_is_retried_like_every_step():
    run_ = Execution(checkpoint("1.2", attempts=2))
    run_.complete(run_.calls[0], expanded(instances("1.2", 1)).to_json())
    run_.complete(run_.running[0], Copied(1, 0).to_json())
    run_.fail(run_.running[0], "destination: the service is busy")
    run_.fire(run_.waiting[0])
    (commit,) = run_.running
    run_.complete(commit, Committed(HREF, "ab" * 32, 60).to_json())
    assert run_.state["isDone"] and run_.state["output"]["manifestHref"] == HREF


def test_the_run_after_a_failure_commits_the_counted_generations_then_fails_with_the_digest():
    failed = Checkpoint.from_json({**checkpoint("3.4").to_json(), "exported": 2, "generation": 3}).failed(
        "reading the DICOM store failed: connection refused")
    run_ = Execution(failed)
    (commit,) = run_.calls
    assert commit.name == COMMIT and CommitWork.from_json(commit.input) == CommitWork("op", DESTINATION, before_generation=3)

    with pytest.raises(Exception) as ended:
        run_.complete(commit, Committed(HREF, "cd" * 32, 80).to_json())
    message, _, data = str(ended.value).partition("$OutOfProcData$:")
    state = json.loads(data)
    assert message.strip() == failed.failure
    assert state["customStatus"] == {**failed.status(error=failed.failure), "manifestHref": HREF,
                                     "manifestSha256": "cd" * 32, "manifestSize": 80}


def test_a_failed_export_whose_commit_fails_too_still_fails_with_the_first_reason_and_no_manifest():
    failed = checkpoint("3.4").failed("destination: container 'out' does not exist")
    run_ = Execution(failed)
    with pytest.raises(Exception) as ended:
        run_.fail(run_.calls[0], "destination: container 'out' does not exist (again)")
    message, _, data = str(ended.value).partition("$OutOfProcData$:")
    assert message.strip() == failed.failure
    assert "manifestHref" not in json.loads(data)["customStatus"]


def test_the_status_shows_the_counted_generations_which_a_cancel_commits():
    """A cancel is a terminate: the extension ends the instance without running the orchestrator again, so the
    operation shows the status last published, whose `generation` says which manifest blocks the cancel commits
    (endpoints/operations.py): those of the generations its counts count."""
    second = Checkpoint.from_json({**checkpoint("1.2", "3.4", batch_size=1, batches=1).to_json(),
                                   "exported": 7, "skipped": 1, "generation": 2})
    run_ = Execution(second)
    run_.complete(run_.calls[0], expanded(instances("1.2", 1)).to_json())
    assert [c.name for c in run_.running] == [COPY, EXPAND]
    assert (run_.state["customStatus"]["exported"], run_.state["customStatus"]["generation"]) == (7, 2)
    run_.complete(run_.running[0], Copied(1, 0).to_json())
    assert (run_.state["customStatus"]["exported"], run_.state["customStatus"]["skipped"],
            run_.state["customStatus"]["generation"]) == (8, 1, 3)


def test_a_whole_export_counts_exactly_and_names_its_blocks_in_source_order_whatever_the_run_length(monkeypatch):
    monkeypatch.setattr(export, "RUN_GENERATIONS", 3)
    studies = [f"1.{n}" for n in range(7)]
    blocks: list[tuple[int, int, str]] = []

    def expand(work: dict) -> dict:
        taken = ExpandWork.from_json(work).identifiers[:2]
        return expanded(*(instances(s, 2) for s in taken), consumed=len(taken)).to_json()

    def copy(work: dict) -> dict:
        item = CopyWork.from_json(work)
        blocks.append((item.generation, item.batch, item.instances[0][0].split("/")[0]))
        return Copied(2, 0).to_json()

    last, runs = run(checkpoint(*studies, batch_size=2, batches=2),
                     {EXPAND: expand, COPY: copy, COMMIT: lambda work: Committed(HREF, "ab" * 32, 1).to_json()})
    assert (last.state["output"]["exported"], last.state["output"]["skipped"], runs) == (14, 0, 2)
    assert [study for *_, study in sorted(blocks)] == studies  # block ids sort in source order
    assert len({(g, b) for g, b, _ in blocks}) == len(blocks) == 7
