"""The export orchestration: one generation per execution, continued as new until nothing is left.

Each generation expands the next identifiers into at most MaxParallelBatches batches, copies them
in parallel, adds up the progress, publishes it as custom status and continues as new with the
updated checkpoint, so the history never holds more than one generation however big the export.
The last generation ends by committing the manifest its batches staged (shared/export/manifest.py).
When an activity fails after its retries, one more generation commits what the completed generations
staged and fails with the reason, so a failed export can be verified, and retried from its checkpoint.
The input is a `shared.export.checkpoint.Checkpoint`; its secrets stay encrypted here.
"""

from __future__ import annotations

import azure.durable_functions as df

from orchestrations.notify import notify_end
from shared.export import events
from shared.export.checkpoint import Batching, Checkpoint
from shared.export.operation import ORCHESTRATOR, failure_reason
from shared.export.work import Committed, Copied, Expanded

bp = df.Blueprint()

EXPAND = "export_expand"
COPY = "export_copy_batch"
COMMIT = "export_commit_manifest"


class ExportFailed(RuntimeError):
    """The export cannot finish; the message is the reason shown in the operation's errors."""


class RetryOptions(df.RetryOptions):
    """RetryOptions with a backoff coefficient: the Durable extension applies it, the Python SDK omits it."""

    def __init__(self, first_retry_interval_in_milliseconds: int, max_number_of_attempts: int,
                 backoff_coefficient: float):
        super().__init__(first_retry_interval_in_milliseconds, max_number_of_attempts)
        self.backoff_coefficient = backoff_coefficient

    def to_json(self) -> dict:
        return {**super().to_json(), "backoffCoefficient": self.backoff_coefficient}


def retry_options(batching: Batching) -> RetryOptions:
    return RetryOptions(max(1, round(batching.first_retry_seconds * 1000)), batching.retry_attempts,
                        batching.backoff_coefficient)


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def export_orchestrator(context: df.DurableOrchestrationContext):
    checkpoint = Checkpoint.from_json(context.get_input())
    context.set_custom_status(checkpoint.status(error=checkpoint.failure))
    if checkpoint.failure:  # the generation before failed: commit what the completed ones wrote, then fail
        try:
            committed = Committed.from_json(
                (yield context.call_activity(COMMIT, checkpoint.commit_input(failed=True).to_json())))
        except Exception:  # noqa: BLE001 - the destination may be what failed: the reason says so
            committed = None
        context.set_custom_status(checkpoint.status(error=checkpoint.failure, committed=committed))
        _log_end(context, checkpoint, "failed", error=checkpoint.failure)
        yield from notify_end(context, checkpoint)  # issue 23: the completion notification (orchestrations/notify.py)
        raise ExportFailed(checkpoint.failure)
    retry = retry_options(checkpoint.batching)
    try:
        expansion = checkpoint.prefetched
        if expansion is None:
            expansion = Expanded.from_json(
                (yield context.call_activity_with_retry(EXPAND, retry, checkpoint.expand_input().to_json())))
        rest = checkpoint.listed(expansion)
        tasks = [context.call_activity_with_retry(COPY, retry, checkpoint.copy_input(batch, number).to_json())
                 for number, batch in enumerate(expansion.batches)]
        if not rest.done:  # list the next generation while this one copies (last: it waits for a free worker)
            tasks.append(context.call_activity_with_retry(EXPAND, retry, rest.expand_input().to_json()))
        results = (yield context.task_all(tasks)) if tasks else []
        prefetched = None if rest.done else Expanded.from_json(results.pop())  # the look-ahead is the last task
        checkpoint = checkpoint.advance(expansion, [Copied.from_json(r) for r in results], prefetched)
        context.set_custom_status(checkpoint.status())
        if not checkpoint.done:
            context.continue_as_new(checkpoint.to_json())
            return None
        committed = Committed.from_json(
            (yield context.call_activity_with_retry(COMMIT, retry, checkpoint.commit_input().to_json())))
    except Exception as error:  # noqa: BLE001 - an activity failed after its retries: the export fails
        # ... in a generation of its own, which commits the manifest first: one of this generation's history,
        # with its failed task_all and retry timers, would hand the commit's result to the wrong task.
        failed = checkpoint.failed(failure_reason(str(error)))
        context.set_custom_status(failed.status(error=failed.failure))
        context.continue_as_new(failed.to_json())
        return None
    final = checkpoint.status(committed=committed)
    context.set_custom_status(final)
    _log_end(context, checkpoint, "completed")
    yield from notify_end(context, checkpoint)  # issue 23: the completion notification (orchestrations/notify.py)
    return final


def _log_end(context: df.DurableOrchestrationContext, checkpoint: Checkpoint, status: str, **fields: str) -> None:
    """The `export.ended` line, once: a replay of this last episode logs nothing."""
    if not context.is_replaying:
        events.emit(events.ENDED, operationId=checkpoint.operation_id, status=status, exported=checkpoint.exported,
                    skipped=checkpoint.skipped, generations=checkpoint.generation,
                    durationMs=events.duration_ms(checkpoint.created_time, context.current_utc_datetime), **fields)
