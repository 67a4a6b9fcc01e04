"""The notifier's activities (orchestrations/notify.py): start the notifier, and deliver the final status once.

Both hold a durable client: START to start the notifier instance, DELIVER to read the operation's final view,
so that the body is what GET /v1/operations/{id} answers. DELIVER never raises for a failed delivery: it returns
why, and the notifier decides when to try again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from endpoints.operations import durable_status, summed_status
from orchestrations.notify import DELIVER, START, start_notifier
from shared.errors import Misconfigured
from shared.export.notify import DeliveryFailed, Notification, NotificationPolicy, deliver
from shared.export.operation import is_terminal, operation_view
from shared.secrets import first_line

bp = df.Blueprint()
log = logging.getLogger(__name__)
END_WAIT = 60.0  # seconds DELIVER waits for the export to reach its end (it starts the notifier just before)


@bp.activity_trigger(input_name="work", activity=START)
@bp.durable_client_input(client_name="client")
async def export_notify_start(work: dict, client: df.DurableOrchestrationClient) -> None:
    await start_notifier(client, work["operationId"], work["notification"])


@bp.activity_trigger(input_name="work", activity=DELIVER)
@bp.durable_client_input(client_name="client")
async def export_notify_deliver(work: dict, client: df.DurableOrchestrationClient) -> dict[str, Any]:
    """{"deliveredTime"} once the receiver answered 2xx; else {"lastError", "lastAttemptTime"}."""
    operation_id = work["operationId"]
    view = await _final_view(client, operation_id)
    try:
        if view is None:
            raise DeliveryFailed(f"the export has not ended within {END_WAIT:g} s")
        notification = Notification.from_protected(work["notification"])
        body = json.dumps(view).encode()
        await asyncio.to_thread(deliver, notification, body, NotificationPolicy.from_settings())
    except (DeliveryFailed, Misconfigured) as failed:
        reason = first_line(failed)
        log.warning("operation %s: notification not delivered: %s", operation_id, reason)
        return {"lastError": reason, "lastAttemptTime": _now()}
    log.info("operation %s: notification delivered (%s)", operation_id, view["status"])
    return {"deliveredTime": _now()}


async def _final_view(client: df.DurableOrchestrationClient, operation_id: str) -> dict[str, Any] | None:
    """The operation view (v1) once the export has ended; None if it has not within END_WAIT."""
    deadline = time.monotonic() + END_WAIT
    while True:
        found = durable_status(await client.get_status(operation_id, show_input=True))
        view = operation_view(await summed_status(client, found), "v1") if found else None  # an export's lanes too
        if view is not None and is_terminal(view):
            return view
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.2)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
