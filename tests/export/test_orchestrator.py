"""The export orchestrator itself, fed built histories (tests/export/orchestrating.py): no host, no store."""

from __future__ import annotations

import json

import pytest

from orchestrations.export import COMMIT, COPY, EXPAND
from shared.export.checkpoint import Batching, Checkpoint
from shared.export.work import Committed, CommitWork, Copied, CopyWork, Expanded, ExpandWork

from .orchestrating import Execution

DESTINATION = {"accountUrl": "https://account.blob.core.windows.net", "container": "out", "account": "account",
               "useManagedIdentity": True, "secret": None}
HREF = "https://account.blob.core.windows.net/out/op/manifest-sha256.txt"


def checkpoint(*identifiers: str, batch_size: int = 2, batches: int = 2) -> Checkpoint:
    return Checkpoint("op", identifiers, DESTINATION, Batching(batch_size, batches, 1, 1, 1.0, 2.0),
                      "2026-01-01T00:00:00Z", "https://account.blob.core.windows.net/out/op/errors.log")


def instances(study: str, count: int) -> tuple[list, ...]:
    return tuple([f"{study}/{study}.1/{study}.1.{n}.dcm", f"etag{n}", 10] for n in range(count))


def expanded(*batches: tuple[list, ...], not_found: int = 0, consumed: int = 1, cursor: str | None = None) -> Expanded:
    return Expanded(tuple(batches), not_found, consumed, cursor)


def test_a_generation_expands_copies_every_batch_in_parallel_and_continues_as_new_with_the_counts():
    start = checkpoint("1.2", "3.4", "5.6", "7.8", "9.9", batch_size=2, batches=1)
    run = Execution(start)
    (expand,) = run.calls
    assert (expand.name, ExpandWork.from_json(expand.input)) == (EXPAND, start.expand_input())
    assert ExpandWork.from_json(expand.input).identifiers == ("1.2", "3.4")  # only what one generation can reach
    assert run.state["customStatus"]["generation"] == 1 and not run.state["isDone"]

    first = expanded(instances("1.2", 2), not_found=1, consumed=2)
    run.complete(expand, first.to_json())
    copy, ahead = run.running
    assert (copy.name, CopyWork.from_json(copy.input)) == (COPY, start.copy_input(first.batches[0], 0))
    run.complete(copy, Copied(1, 1).to_json())
    run.complete(ahead, expanded(instances("5.6", 2)).to_json())

    following = run.continued_as
    assert run.state["isDone"] and following is not None
    assert (following.identifiers, following.generation, following.exported, following.skipped) == (
        ("5.6", "7.8", "9.9"), 2, 1, 2)  # a skipped copy and an identifier that matched nothing
    assert run.state["customStatus"] == following.status()


def test_the_look_ahead_expand_is_scheduled_last_and_its_result_becomes_the_next_generations_batches():
    """The orchestrator takes the look-ahead as `results.pop()`: it must be the last task of the task_all."""
    run = Execution(checkpoint("1.2", "3.4", "5.6", batch_size=2, batches=2))
    this = expanded(instances("1.2", 2), instances("3.4", 2), consumed=2)
    run.complete(run.calls[0], this.to_json())
    assert [c.name for c in run.running] == [COPY, COPY, EXPAND]
    assert ExpandWork.from_json(run.running[-1].input).identifiers == ("5.6",)

    following_batches = expanded(instances("5.6", 3))
    first, second, ahead = run.running
    run.complete(ahead, following_batches.to_json())  # finishing first does not make it a copy's result
    run.complete(second, Copied(2, 0).to_json())
    run.complete(first, Copied(2, 0).to_json())

    following = run.continued_as
    assert following is not None and following.prefetched == following_batches
    assert (following.exported, following.skipped) == (4, 0)

    nxt = Execution(following)  # the next generation copies what was listed ahead without expanding again
    assert [c.name for c in nxt.calls] == [COPY]
    assert CopyWork.from_json(nxt.calls[0].input).instances == following_batches.batches[0]


def test_the_last_generation_commits_the_manifest_and_completes_with_its_href():
    run = Execution(checkpoint("1.2"))
    run.complete(run.calls[0], expanded(instances("1.2", 1), instances("1.2", 1)).to_json())
    assert [c.name for c in run.running] == [COPY, COPY]  # nothing left: no look-ahead
    for call in run.running:
        run.complete(call, Copied(1, 0).to_json())
    (commit,) = run.running
    assert commit.name == COMMIT and run.continued_as is None

    assert CommitWork.from_json(commit.input).before_generation is None  # completed: every block

    run.complete(commit, Committed(HREF, "ab" * 32, 120).to_json())
    assert run.state["isDone"]
    assert run.state["output"] == {**checkpoint("1.2").status(), "exported": 2, "generation": 2, "total": 2,
                                   "manifestHref": HREF, "manifestSha256": "ab" * 32, "manifestSize": 120}
    assert run.state["customStatus"] == run.state["output"]


def test_a_failed_batch_ends_its_generation_at_once_and_continues_as_new_marked_failed():
    """The failing generation does not commit: the next one does (see the orchestrator's module docstring)."""
    start = checkpoint("1.2", "3.4", batch_size=1, batches=2)
    run = Execution(start)
    run.complete(run.calls[0], expanded(instances("1.2", 1), instances("3.4", 1), consumed=2).to_json())
    failing, sibling = run.running
    reason = "destination: container 'out' does not exist"
    run.fail(failing, reason)

    following = run.continued_as
    assert run.state["isDone"] and following is not None  # decided at once, while the sibling still runs
    assert sibling in run.running and [c.name for c in run.calls] == [EXPAND, COPY, COPY]  # nothing committed here
    assert following.failure == reason and run.state["customStatus"]["error"] == reason
    # the checkpoint the failed generation started from: a retry runs that generation again
    assert following == start.failed(reason)


def test_the_generation_after_a_failure_commits_the_completed_generations_then_fails_with_the_digest():
    failed = Checkpoint.from_json({**checkpoint("3.4").to_json(), "exported": 2, "generation": 3}).failed(
        "reading the DICOM store failed: connection refused")
    run = Execution(failed)
    (commit,) = run.calls
    assert commit.name == COMMIT and CommitWork.from_json(commit.input) == CommitWork("op", DESTINATION, before_generation=3)

    with pytest.raises(Exception) as ended:
        run.complete(commit, Committed(HREF, "cd" * 32, 80).to_json())
    message, _, data = str(ended.value).partition("$OutOfProcData$:")
    state = json.loads(data)
    assert message.strip() == failed.failure
    assert state["customStatus"] == {**failed.status(error=failed.failure), "manifestHref": HREF,
                                     "manifestSha256": "cd" * 32, "manifestSize": 80}


def test_a_failed_export_whose_commit_fails_too_still_fails_with_the_first_reason_and_no_manifest():
    failed = checkpoint("3.4").failed("destination: container 'out' does not exist")
    run = Execution(failed)
    with pytest.raises(Exception) as ended:
        run.fail(run.calls[0], "destination: container 'out' does not exist (again)", retried=False)
    message, _, data = str(ended.value).partition("$OutOfProcData$:")
    assert message.strip() == failed.failure
    assert "manifestHref" not in json.loads(data)["customStatus"]


def test_a_cancel_leaves_the_counts_of_the_last_finished_generation_in_the_status():
    """A cancel is a terminate: the extension ends the instance without running the orchestrator again, so
    what the operation shows is the status the orchestrator published before it, the generation's start."""
    second = checkpoint("1.2", "3.4", batch_size=1, batches=1)
    second = Checkpoint.from_json({**second.to_json(), "exported": 7, "skipped": 1, "generation": 2})
    run = Execution(second)
    run.complete(run.calls[0], expanded(instances("1.2", 1)).to_json())
    assert [c.name for c in run.running] == [COPY, EXPAND]
    assert not run.state["isDone"]
    assert (run.state["customStatus"]["exported"], run.state["customStatus"]["skipped"],
            run.state["customStatus"]["generation"]) == (7, 1, 2)
