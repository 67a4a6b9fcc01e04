"""The notifier: one small orchestration per ended export that POSTs its final status, retrying on durable timers.

Why an orchestration of its own rather than steps at the export's end: a cancel terminates the export's
orchestration, so nothing can run in it afterwards; and the export's status must read completed, failed or
canceled while a receiver that is down is retried for up to an hour. So every end starts the notifier
`<operation id>:notify`: the export orchestrator through the START activity just before it completes or fails
(`notify_end`, its one call), the cancel endpoint right after it terminates the export (`start_notifier`).

Each attempt is one DELIVER activity, which reads the operation's final view itself, so the body is exactly
what GET /v1/operations/{id} answers. Between attempts the notifier waits on a durable timer, so a host
restart loses no attempt and holds no worker. Its custom status, then its output, is the outcome the operation
view shows as `notification` (shared/export/notify.py `outcome`).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from shared.export.checkpoint import Checkpoint
from shared.export.notify import NotificationPolicy
from shared.export.operation import failure_reason

bp = df.Blueprint()
log = logging.getLogger(__name__)

NOTIFIER = "export_notifier"
START = "export_notify_start"
DELIVER = "export_notify_deliver"
_ACTIVE = ("Running", "Pending", "Suspended", "ContinuedAsNew")


def notifier_id(operation_id: str) -> str:
    """The notifier's instance id: one per operation, so a repeated start finds it."""
    return f"{operation_id}:notify"


def notify_end(context: df.DurableOrchestrationContext, checkpoint: Checkpoint) -> Generator[Any, Any]:
    """In the export orchestrator, just before it completes or fails: start the notifier if the request asked
    for one. Best effort: a failure here is logged and never changes how the export ends.

        yield from notify_end(context, checkpoint)
    """
    if checkpoint.notification:
        try:
            yield context.call_activity(START, {"operationId": checkpoint.operation_id,
                                                "notification": checkpoint.notification})
        except Exception as error:  # noqa: BLE001 - the export's end stands; its view shows the notification pending
            if not context.is_replaying:
                log.warning("operation %s: the notifier did not start: %s", checkpoint.operation_id,
                            failure_reason(str(error)))


async def start_notifier(client: df.DurableOrchestrationClient, operation_id: str, token: str,
                         env: Mapping[str, str] | None = None) -> None:
    """Start the notifier of `operation_id`'s end; none when one still runs (each attempt reads the newest end)."""
    instance = notifier_id(operation_id)
    existing = await client.get_status(instance)
    if existing and existing.runtime_status is not None and existing.runtime_status.value in _ACTIVE:
        return
    job = {"operationId": operation_id, "notification": token, "waits": NotificationPolicy.from_settings(env).waits()}
    await client.start_new(NOTIFIER, instance, job)


@bp.orchestration_trigger(context_name="context", orchestration=NOTIFIER)
def export_notifier(context: df.DurableOrchestrationContext):
    job = context.get_input()
    waits: list[float] = job["waits"]
    state: dict[str, Any] = {"status": "pending", "attempts": 0, "maxAttempts": len(waits) + 1}
    context.set_custom_status(state)
    for attempt, wait in enumerate([*waits, None], start=1):
        try:
            result = yield context.call_activity(DELIVER, {"operationId": job["operationId"],
                                                           "notification": job["notification"]})
        except Exception as error:  # noqa: BLE001 - an unexpected fault counts as a failed attempt
            result = {"lastError": failure_reason(str(error))}
        state = {k: v for k, v in state.items() if k != "nextAttemptTime"} | {"attempts": attempt}
        if "deliveredTime" in result:
            state = {k: v for k, v in state.items() if not k.startswith("last")} | result | {"status": "delivered"}
            break
        state |= result
        if wait is None:
            state["status"] = "failed"
            break
        due = context.current_utc_datetime + timedelta(seconds=wait)
        state |= {"status": "retrying", "nextAttemptTime": due.isoformat().replace("+00:00", "Z")}
        context.set_custom_status(state)
        yield context.create_timer(due)
    context.set_custom_status(state)
    return state
