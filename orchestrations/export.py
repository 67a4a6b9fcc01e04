"""The export orchestration: a sliding window of copy batches, continued as new every RUN_GENERATIONS generations.

Each run keeps MaxParallelBatches copy batches in flight and starts the next as each finishes, while the
look-ahead expand lists the generation after (shared/export/window.py decides what to start and what is
counted). After the batches of RUN_GENERATIONS generations it drains and continues as new with the checkpoint,
so the history stays bounded however big the export. The last run ends by committing the manifest the batches
staged (shared/export/manifest.py).

The orchestrator retries failed activities itself, with durable timers: every failed call waits
first interval × coefficient^(attempt - 1) and runs again, up to Export__RetryOptions__MaxNumberOfAttempts
(Batching.retry_wait), as the extension's retry did. Each yield that schedules something new (a refill, a
retry, a retry timer) is a task_any beside a zero-length timer: the extension's shim awaits each yield's new
actions in order (devhost/README.md), and the timer, which fires at once, lets it reach the next yield, so
the window stays full and every call's sequence number depends only on the order of yields: the replay is
deterministic whatever fails when (tests/reliability/test_storage_outage.py).

When a call fails after its retries, one more run commits what the counted generations staged and fails with
the reason, so a failed export can be verified, and retried from its checkpoint.

Why RUN_GENERATIONS = 8: each batch adds about six events to the history (its call, its result, the timer
beside it and the episode around them) and every episode replays the whole run's history, so the replay cost
grows with the square of a run's length; the drain at the end of a run is one lock-step barrier (measured at
4.5 % of a generation when every generation was one). Eight generations keep a run's history near 500 events
at the default 10 batches (a lock-step generation had ~60) and the barrier's cost near 0.6 %.
The input is a `shared.export.checkpoint.Checkpoint`; its secrets stay encrypted here.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NoReturn

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskState

from orchestrations import lanes
from orchestrations.notify import notify_end
from shared.export import events
from shared.export.checkpoint import Batching, Checkpoint
from shared.export.operation import ORCHESTRATOR, failure_reason
from shared.export.window import Step, Window
from shared.export.work import Committed

bp = df.Blueprint()

EXPAND = "export_expand"
COPY = "export_copy_batch"
COMMIT = "export_commit_manifest"
RUN_GENERATIONS = 8
_ACTIVITY = {"expand": EXPAND, "copy": COPY, "commit": COMMIT}


class ExportFailed(RuntimeError):
    """The export cannot finish; the message is the reason shown in the operation's errors."""


class StepFailed(Exception):
    """An activity failed its last attempt; the reason is the one shown in the operation's errors."""


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def export_orchestrator(context: df.DurableOrchestrationContext):
    checkpoint = Checkpoint.from_json(context.get_input())
    if checkpoint.lanes > 1 and checkpoint.lane is None:  # Export__Lanes: the parent of its lanes (orchestrations/lanes.py)
        return (yield from lanes.run(context, checkpoint, COMMIT))
    context.set_custom_status(checkpoint.status(error=checkpoint.failure))
    if checkpoint.failure:  # the run before failed: commit what the counted generations wrote, then fail
        if checkpoint.lane is not None:  # a lane: its parent commits every lane's, and fails the export
            return checkpoint.status(error=checkpoint.failure)
        committed = yield from _commit_failed(context, checkpoint)
        yield from notify_end(context, checkpoint)  # issue 23: the completion notification (orchestrations/notify.py)
        _fail(context, checkpoint, committed)
    window = Window(checkpoint, RUN_GENERATIONS)
    calls = Calls(context, checkpoint.batching)
    try:
        yield from _copy(context, window, calls)
        if not window.finished:  # this run's generations are copied: the next run goes on from here
            context.continue_as_new(window.resume().to_json())
            return None
        if checkpoint.lane is not None:  # a lane: its parent commits the manifest once every lane has ended
            return window.counted.status()
        committed = yield from _commit(calls, window.counted)
    except StepFailed as failed:
        # ... in a run of its own, which commits the manifest first: this one still has calls in flight.
        _continue_failed(context, window.resume().failed(str(failed)))
        return None
    final = _complete(context, window.counted, committed)
    yield from notify_end(context, window.counted)  # issue 23: the completion notification (orchestrations/notify.py)
    return final


def _copy(context: df.DurableOrchestrationContext, window: Window, calls: Calls) -> Generator[Any, Any]:
    """Keep the window full until this run has nothing left to start and nothing in flight."""
    while True:
        for step in window.ready():
            calls.call(step)
        if not window.busy:
            return
        step, result = yield from calls.next()
        window.done(step, result)
        context.set_custom_status(window.resume().status())


def _commit(calls: Calls, checkpoint: Checkpoint) -> Generator[Any, Any, Committed]:
    """The completed export's manifest (and metadata table), retried like every step."""
    calls.call(Step(("commit",), checkpoint.commit_input().to_json()))
    _, result = yield from calls.next()
    return Committed.from_json(result)


def _complete(context: df.DurableOrchestrationContext, checkpoint: Checkpoint, committed: Committed) -> dict:
    """The export completed: its final status, with the manifest's href and digest, is its output."""
    final = checkpoint.status(committed=committed)
    context.set_custom_status(final)
    _log_end(context, checkpoint, "completed")
    return final


def _continue_failed(context: df.DurableOrchestrationContext, failed: Checkpoint) -> None:
    """Hand the failure to a run of its own, from the checkpoint a retry starts from."""
    context.set_custom_status(failed.status(error=failed.failure))
    context.continue_as_new(failed.to_json())


def _commit_failed(context: df.DurableOrchestrationContext,
                   checkpoint: Checkpoint) -> Generator[Any, Any, Committed | None]:
    """The manifest of the counted generations (once, no retry); None if the destination refuses it too."""
    try:
        return Committed.from_json(
            (yield context.call_activity(COMMIT, checkpoint.commit_input(failed=True).to_json())))
    except Exception:  # noqa: BLE001 - the destination may be what failed: the reason says so
        return None


def _fail(context: df.DurableOrchestrationContext, checkpoint: Checkpoint, committed: Committed | None) -> NoReturn:
    """End the export as failed with the reason its checkpoint carries."""
    assert checkpoint.failure is not None
    context.set_custom_status(checkpoint.status(error=checkpoint.failure, committed=committed))
    _log_end(context, checkpoint, "failed", error=checkpoint.failure)
    raise ExportFailed(checkpoint.failure)


class Calls:
    """The activity calls in flight and their retry timers, awaited together.

    Every yield is one task_any over everything pending; when something new was scheduled since the last one,
    a zero-length timer joins it (see the module docstring). A failed call waits for a timer and runs again with
    the same input; after its last attempt `next` cancels the other retry timers (an orchestration ends only
    without open timers) and raises StepFailed.
    """

    def __init__(self, context: df.DurableOrchestrationContext, batching: Batching):
        self.context, self.batching = context, batching
        self.running: dict[Any, tuple[Step, int]] = {}  # activity task -> (step, attempt)
        self.waiting: dict[Any, tuple[Step, int]] = {}  # retry timer -> (step, attempt that failed)
        self.nudges: list[Any] = []
        self.scheduled = False  # something new since the last yield

    def call(self, step: Step, attempt: int = 1) -> None:
        self.running[self.context.call_activity(_ACTIVITY[step.key[0]], step.input)] = (step, attempt)
        self.scheduled = True

    def next(self) -> Generator[Any, Any, tuple[Step, Any]]:
        """The next call that succeeds, and its result."""
        while True:
            if self.scheduled:
                self.nudges.append(self.context.create_timer(self.context.current_utc_datetime))
                self.scheduled = False
            done = yield self.context.task_any([*self.running, *self.waiting, *self.nudges])
            if done in self.nudges:
                self.nudges.remove(done)
            elif done in self.waiting:
                step, attempt = self.waiting.pop(done)
                self.call(step, attempt + 1)
            else:
                step, attempt = self.running.pop(done)
                if done.state is not TaskState.FAILED:
                    return step, done.result
                self._retry(step, attempt, failure_reason(str(done.result)))

    def _retry(self, step: Step, attempt: int, reason: str) -> None:
        wait = self.batching.retry_wait(attempt)
        if wait is None:
            for timer in self.waiting:
                if not timer.is_completed:
                    timer.cancel()
            raise StepFailed(reason)
        self.waiting[self.context.create_timer(self.context.current_utc_datetime + wait)] = (step, attempt)
        self.scheduled = True


def _log_end(context: df.DurableOrchestrationContext, checkpoint: Checkpoint, status: str, **fields: str) -> None:
    """The `export.ended` line, once: a replay of this last episode logs nothing."""
    if not context.is_replaying:
        events.emit(events.ENDED, operationId=checkpoint.operation_id, status=status, exported=checkpoint.exported,
                    skipped=checkpoint.skipped, generations=checkpoint.generation,
                    durationMs=events.duration_ms(checkpoint.created_time, context.current_utc_datetime), **fields)
