"""The parent of an export run as lanes (`Export__Lanes` above 1), called by the export orchestrator in one place.

It cuts the source (a whole store: at the study bounds the split activity picks from one listing), starts each part
as a sub-orchestration of the export orchestrator under an id derived from the operation's, waits for all of them,
then commits the one manifest and ends with the lanes' counts added up, failed if a lane failed. While it waits it
runs no code (an orchestrator wakes only when a lane ends), so the live status is summed from the lanes' own
statuses when the operation is read (endpoints/operations.py, shared/export/lanes.py).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrations.notify import notify_end
from shared.export import events
from shared.export import lanes as export_lanes
from shared.export.checkpoint import WHOLE_STORE, Batching, Checkpoint
from shared.export.operation import ORCHESTRATOR, failure_reason
from shared.export.work import Committed

SPLIT = "export_split_lanes"


class LanesFailed(RuntimeError):
    """A lane (or the split, or the commit) failed; the message is the reason shown in the operation's errors."""


class RetryOptions(df.RetryOptions):
    """The export's retry settings for the parent's own two steps (split, commit), backoff included: the Python SDK
    omits the coefficient the extension applies. The parent yields nothing beside them (no zero-length timer),
    so the extension's retries replay deterministically here, unlike in the lanes' window."""

    def __init__(self, batching: Batching):
        super().__init__(max(1, round(batching.first_retry_seconds * 1000)), batching.retry_attempts)
        self.backoff_coefficient = batching.backoff_coefficient

    def to_json(self) -> dict:
        return {**super().to_json(), "backoffCoefficient": self.backoff_coefficient}


def run(context: df.DurableOrchestrationContext, checkpoint: Checkpoint,
        commit: str) -> Generator[Any, Any, dict[str, Any]]:
    """The whole export as lanes; `commit` is the commit activity's name."""
    retry = RetryOptions(checkpoint.batching)
    base = {**checkpoint.status(), "lanes": checkpoint.lanes}
    context.set_custom_status(base)
    bounds: list[str] = []
    try:
        if checkpoint.identifiers == (WHOLE_STORE,) and not checkpoint.lane_inputs:  # a retry keeps the first cut
            bounds = yield context.call_activity_with_retry(SPLIT, retry, {"lanes": checkpoint.lanes})
        firsts = export_lanes.lane_checkpoints(checkpoint, bounds)
        base = {**base, "lanes": len(firsts)}
        context.set_custom_status(base)
        ended = yield context.task_all([
            context.call_sub_orchestrator(ORCHESTRATOR, first.to_json(),
                                          export_lanes.lane_id(checkpoint.operation_id, first.lane or 0))
            for first in firsts])
    except Exception as error:  # noqa: BLE001 - the split failed after its retries, or a lane broke: nothing counted
        return (yield from _end(context, checkpoint, {**base, "error": failure_reason(str(error))}))
    status = export_lanes.summed(base, ended)
    work = export_lanes.commit_work(checkpoint, ended)
    try:
        status.update(Committed.from_json((yield context.call_activity_with_retry(commit, retry, work.to_json())))
                      .to_json())
    except Exception as error:  # noqa: BLE001 - the destination refused the manifest: the export fails
        status.setdefault("error", failure_reason(str(error)))
    return (yield from _end(context, checkpoint, status))


def _end(context: df.DurableOrchestrationContext, checkpoint: Checkpoint,
         status: dict[str, Any]) -> Generator[Any, Any, dict[str, Any]]:
    """Publish the final status, start the completion notifier if asked, log `export.ended` once; raise LanesFailed
    when the export failed."""
    context.set_custom_status(status)
    yield from notify_end(context, checkpoint)
    if not context.is_replaying:
        fields = {"error": status["error"]} if status.get("error") else {}
        events.emit(events.ENDED, operationId=checkpoint.operation_id,
                    status="failed" if status.get("error") else "completed", exported=status["exported"],
                    skipped=status["skipped"], generations=status["generation"], lanes=status["lanes"],
                    durationMs=events.duration_ms(checkpoint.created_time, context.current_utc_datetime), **fields)
    if status.get("error"):
        raise LanesFailed(status["error"])
    return status
