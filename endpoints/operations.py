"""Operation status, controls and listing: the durable instance's status in the DICOM operation shape.

    GET  operations/{id}, v1/operations/{id}, v2/operations/{id}   202 + Location while running, 200 when done
    POST v1/operations/{id}/cancel, v2/...                          terminate → 202
    POST v1/operations/{id}/pause, v2/...                           suspend → 202 (409 once ended)
    POST v1/operations/{id}/resume, v2/...                          resume → 202 (409 once ended)
    POST v1/operations/{id}/retry, v2/...                           a failed or canceled export goes on → 202
    GET  v1/operations, v2/operations [?status=running,failed]     all of them, newest first
         ... [&top=N][&continuationToken=T]                        one page of N, and the token of the next

Unversioned routes answer like v1 (`completed`); v2 says `succeeded`. A cancel suspends the
orchestration, commits the manifest of the generations it completed (their digest goes into the
terminate reason, which becomes the durable output), then terminates it; a copy activity already
running finishes its batch (its files land in the destination, unlisted) but its result is discarded,
so the counts stay those reached at cancel, and the manifest lists exactly the files they count. A pause is the
runtime's suspend: batches already running finish, their results wait, and nothing new starts until
resume. A retry starts the orchestration again under the same id from the checkpoint its last
generation started from, so the batches of that generation run again and replace their manifest blocks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus
from azure.durable_functions.models.RpcManagementOptions import RpcManagementOptions

from orchestrations.notify import notifier_id, start_notifier
from shared.errors import CopyFailed, Misconfigured
from shared.export.checkpoint import Checkpoint, counted
from shared.export.destination import DestinationRefused
from shared.export.lanes import canceled_work, lane_id, retried
from shared.export.notify import outcome
from shared.export.operation import (
    ORCHESTRATOR,
    STATUSES,
    durable_json,
    is_export,
    is_operation_id,
    is_terminal,
    lane_count,
    operation_view,
    retrying,
    runtime_statuses,
    with_lanes,
)
from shared.export.steps import commit_step
from shared.export.work import Committed

from .export import accepted
from .responses import error, json_response

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger(__name__)
MAX_PAGE = 1000  # the Durable HTTP API's page sizes go this far
CANCELED = "canceled by the client"
_ACTIVE = ("Running", "Pending", "ContinuedAsNew")
CANCEL_WAIT = 30.0  # seconds a cancel waits for the export to suspend before it ends it without a manifest
MAX_TOKEN = 4096  # a continuation token travels as a header: printable ASCII, and not without end


def durable_status(status: df.DurableOrchestrationStatus) -> dict[str, Any] | None:
    """The durable status as the HTTP API's JSON, or None when no such instance exists."""
    if not status:
        return None
    runtime = status.runtime_status
    return {
        "name": status.name, "instanceId": status.instance_id,
        "runtimeStatus": runtime.value if runtime is not None else None,
        "customStatus": status.custom_status, "input": status.input_, "output": status.output,
        "createdTime": _iso(status.created_time), "lastUpdatedTime": _iso(status.last_updated_time),
        "history": status.history or getattr(status, "historyEvents", None),  # the HTTP API says historyEvents
    }


async def find_export(req: func.HttpRequest, client: df.DurableOrchestrationClient, history: bool = False
                      ) -> dict[str, Any] | func.HttpResponse:
    """The durable status of the route's export (with this generation's history if asked), or the 400/404."""
    operation_id = req.route_params.get("id", "")
    if not is_operation_id(operation_id):
        shown = operation_id if len(operation_id) <= 40 else operation_id[:40] + "..."
        return error(400, f"operation id {shown!r} is malformed: expected 32 lowercase hexadecimal characters")
    found = durable_status(await client.get_status(operation_id, show_history=history, show_input=True))
    if not found or not is_export(found):
        return error(404, f"operation {operation_id} does not exist")
    return await summed_status(client, found, history)


async def summed_status(client: df.DurableOrchestrationClient, found: dict[str, Any], history: bool = False
                        ) -> dict[str, Any]:
    """An export's durable status with its lanes' progress summed in (and their statuses under `lanes`) when it
    runs as lanes and has not completed or failed; else as it is. Also what the notifier's body is built from."""
    if found.get("runtimeStatus") not in ("Completed", "Failed") and lane_count(found) > 1:
        lanes = await _lanes(client, found, history)
        return {**with_lanes(found, lanes), "lanes": lanes}
    return found


async def find_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                         version: str) -> dict[str, Any] | func.HttpResponse:
    """The operation view of the route's id, or the 400/404 response saying why there is none."""
    found = await find_export(req, client)
    return found if isinstance(found, func.HttpResponse) else operation_view(found, version)


async def get_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str):
    found = await find_export(req, client, history=True)
    if isinstance(found, func.HttpResponse):
        return found
    view = operation_view(found, version)
    if view["status"] == "running":
        checkpoint = durable_json(found.get("input"))
        attempts = (checkpoint.get("batching") or {}).get("retry_attempts") if isinstance(checkpoint, dict) else None
        histories = [found.get("history"), *(lane.get("history") for lane in found.get("lanes") or [] if lane)]
        retry = next((r for history in histories if (r := retrying(history, attempts))), None)  # its own, or a lane's
        if retry:
            view["retrying"] = retry
    if _notification(found):
        view["notification"] = outcome(durable_status(await client.get_status(notifier_id(view["operationId"])))
                                       if is_terminal(view) else None)
    if is_terminal(view):
        return json_response(view, 200)
    return json_response(view, 202, {"Location": _without_query(req.url)})


async def cancel_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str):
    found = await find_export(req, client)
    if isinstance(found, func.HttpResponse):
        return found
    view = operation_view(found, version)
    operation_id = view["operationId"]
    if view["status"] != "canceled":
        if is_terminal(view):
            return error(409, f"operation {operation_id} is already {view['status']}; nothing to cancel")
        committed = await _commit_when_suspended(client, operation_id, found)
        await _each_lane(client, found, "terminate", CANCELED)
        await client.terminate(operation_id, json.dumps({"reason": CANCELED, **committed.to_json()}) if committed else CANCELED)
        await _notify_canceled(client, operation_id, found)
    return accepted(req, version, operation_id)


def _notification(found: dict[str, Any]) -> str | None:
    """The export's protected notification (URL and secret encrypted), if its request asked for one."""
    checkpoint = durable_json(found.get("input"))
    return checkpoint.get("notification") if isinstance(checkpoint, dict) else None


async def _notify_canceled(client: df.DurableOrchestrationClient, operation_id: str, found: dict[str, Any]) -> None:
    """Start the notifier of a canceled export here: the terminated orchestration runs nothing more."""
    token = _notification(found)
    if token:
        try:
            await start_notifier(client, operation_id, token)
        except (Misconfigured, aiohttp.ClientError) as problem:  # the cancel stands; the view shows it pending
            log.warning("operation %s: the notification of its cancel did not start: %s", operation_id, problem)


async def _commit_when_suspended(client: df.DurableOrchestrationClient, operation_id: str,
                                 found: dict[str, Any]) -> Committed | None:
    """Suspend the export, then commit the manifest of the generations it completed, so that a canceled export
    can be verified: suspended, it cannot move on to another generation, so its counts and checkpoint are
    those of the manifest (the run's checkpoint, as far as the status it published counts). None (cancel without a manifest) if it does not suspend within CANCEL_WAIT seconds
    or the destination refuses."""
    if found.get("runtimeStatus") != "Suspended":
        await client.suspend(operation_id, "suspended to be canceled")
        deadline = time.monotonic() + CANCEL_WAIT
        while (found := durable_status(await client.get_status(operation_id, show_input=True)) or {}).get(
                "runtimeStatus") != "Suspended":
            if time.monotonic() > deadline or found.get("runtimeStatus") not in _ACTIVE:
                log.warning("operation %s: canceled without a manifest: it did not suspend (%s)", operation_id,
                            found.get("runtimeStatus"))
                return None
            await asyncio.sleep(0.2)
    checkpoint = counted(Checkpoint.from_json(durable_json(found["input"])), durable_json(found.get("customStatus")))
    work = checkpoint.commit_input(failed=True)
    if lane_count(found) > 1:  # suspended, the parent starts no lane: suspend those it started, then commit theirs
        lanes = await _suspend_lanes(client, found)
        if lanes is None:
            return None
        work = canceled_work(checkpoint, [(lane["runtimeStatus"], durable_json(lane["input"]),
                                           durable_json(lane["customStatus"])) if lane else None for lane in lanes])
    try:
        return await asyncio.to_thread(commit_step, work)
    except (CopyFailed, DestinationRefused) as refused:
        log.warning("operation %s: canceled without a manifest: %s", operation_id, refused)
        return None


async def _lanes(client: df.DurableOrchestrationClient, found: dict[str, Any], history: bool = False
                 ) -> list[dict[str, Any] | None]:
    """The durable statuses of an export's lanes, in order (None: not started), each with its current generation's
    history if asked; [] for an export without lanes."""
    count = lane_count(found) if isinstance(found, dict) else 1
    if count == 1:
        return []
    ids = [lane_id(found["instanceId"], n) for n in range(count)]
    return [durable_status(s) for s in await asyncio.gather(*(client.get_status(i, show_history=history,
                                                                                 show_input=True) for i in ids))]


async def _each_lane(client: df.DurableOrchestrationClient, found: dict[str, Any] | func.HttpResponse, action: str,
                     reason: str) -> None:
    """Suspend, resume or terminate every lane that is still running: the Durable extension carries none of these
    from a parent to its sub-orchestrations (devhost/README.md)."""
    lanes = await _lanes(client, found) if isinstance(found, dict) else []
    for lane in lanes:
        if lane and lane["runtimeStatus"] in (*_ACTIVE, "Suspended"):
            try:
                await getattr(client, action)(lane["instanceId"], reason)
            except Exception:  # noqa: BLE001 - the lane ended, or was already in that state, meanwhile
                log.info("lane %s: not %sd (%s)", lane["instanceId"], action, lane["runtimeStatus"])


async def _suspend_lanes(client: df.DurableOrchestrationClient, found: dict[str, Any]
                         ) -> list[dict[str, Any] | None] | None:
    """Suspend the lanes of a suspended parent and wait until none runs; their statuses then, or None if one still
    runs after CANCEL_WAIT seconds."""
    await _each_lane(client, found, "suspend", "suspended to be canceled")
    deadline = time.monotonic() + CANCEL_WAIT
    while True:
        lanes = await _lanes(client, found)
        if not any(lane and lane["runtimeStatus"] in _ACTIVE for lane in lanes):
            return lanes
        if time.monotonic() > deadline:
            log.warning("operation %s: canceled without a manifest: a lane did not suspend", found["instanceId"])
            return None
        await asyncio.sleep(0.2)


async def pause_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str):
    """Suspend a running export (idempotent); 409 naming its status once it has ended."""
    return await _control(req, client, version, "pause")


async def resume_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str):
    """Resume a paused export (idempotent: resuming one that runs changes nothing); 409 once it has ended."""
    return await _control(req, client, version, "resume")


async def _control(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str, action: str):
    view = await find_operation(req, client, version)
    if isinstance(view, func.HttpResponse):
        return view
    operation_id = view["operationId"]
    if is_terminal(view):
        return error(409, f"operation {operation_id} is {view['status']}; it cannot be {action}d")
    wanted = "paused" if action == "pause" else "running"
    if view["status"] != wanted:
        try:
            if action == "pause":
                await client.suspend(operation_id, "paused by the client")
            else:
                await client.resume(operation_id, "resumed by the client")
            await _each_lane(client, await find_export(req, client), "suspend" if action == "pause" else "resume",
                             f"{action}d by the client")
        except Exception:  # noqa: BLE001 - the runtime refuses a state change that raced another one
            again = await find_operation(req, client, version)
            if isinstance(again, func.HttpResponse) or is_terminal(again) or again["status"] != wanted:
                return error(409, f"operation {operation_id} is "
                             f"{again['status'] if isinstance(again, dict) else 'gone'}; it cannot be {action}d")
    return accepted(req, version, operation_id)


async def retry_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str):
    """Start a failed or canceled export again from its last checkpoint, under the same id; 409 otherwise."""
    found = await find_export(req, client)
    if isinstance(found, func.HttpResponse):
        return found
    view = operation_view(found, version)
    operation_id = view["operationId"]
    if view["status"] not in ("failed", "canceled"):
        return error(409, f"operation {operation_id} is {view['status']}; only a failed or canceled export "
                          "can be retried")
    checkpoint = replace(Checkpoint.from_json(durable_json(found["input"])), failure=None)
    if lane_count(found) > 1:  # each lane resumes from its own checkpoint
        checkpoint = retried(checkpoint, [durable_json(lane["input"]) if lane else None
                                          for lane in await _lanes(client, found)])
    await client.start_new(ORCHESTRATOR, operation_id, checkpoint.to_json())
    return accepted(req, version, operation_id)


async def list_operations(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str):
    """All exports newest first; with `top`, one page of them and the next page's token.

    The task hub lists instances in no useful order (the Azure Storage provider: by partition), so every
    page reads the whole filtered list, sorts it, and starts after the token's (created time, id).
    """
    wanted = _status_filter(req)
    if isinstance(wanted, func.HttpResponse):
        return wanted
    top = _top(req)
    if isinstance(top, func.HttpResponse):
        return top
    runtime = sorted({r for status in wanted for r in runtime_statuses(status)})
    text = req.params.get("continuationToken") or None
    after = _decode_token(text) if text is not None else None
    if text is not None and after is None:
        return error(400, "query parameter continuationToken: not a token this service issued")
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = await _status_page(client, runtime, MAX_PAGE, token)
        assert page is not None  # only a token from a client can be refused
        statuses, token = page
        found += [s for s in statuses if s["name"] == ORCHESTRATOR]
        if not token:
            break
    by_id = {s["instanceId"]: s for s in found}
    found = [with_lanes(s, [by_id.get(lane_id(s["instanceId"], n)) for n in range(lane_count(s))])
             for s in found if is_export(s)]
    views = sorted((operation_view(s, version) for s in found), key=_order, reverse=True)
    if after is not None:
        views = [v for v in views if _order(v) < after]
    if top and len(views) > top:
        views = views[:top]
        return json_response({"operations": views, "continuationToken": _encode_token(_order(views[-1]))})
    return json_response({"operations": views})


def _order(view: dict[str, Any]) -> tuple[str, str]:
    """Newest first: the created time, and the id to keep pages apart when two exports share a time."""
    return view["createdTime"] or "", view["operationId"] or ""


def _encode_token(last: tuple[str, str]) -> str:
    """The next page starts after `last`; the token is opaque to clients."""
    return base64.urlsafe_b64encode(f"{last[0]}|{last[1]}".encode()).decode()


def _decode_token(token: str) -> tuple[str, str] | None:
    if len(token) > MAX_TOKEN or not token.isascii() or not token.isprintable():
        return None
    try:
        created, operation_id = base64.urlsafe_b64decode(token.encode()).decode().split("|")
        datetime.fromisoformat(created)
    except ValueError:
        return None
    return (created, operation_id) if is_operation_id(operation_id) else None


async def _status_page(client: df.DurableOrchestrationClient, runtime: list[str], top: int, token: str | None
                       ) -> tuple[list[dict[str, Any]], str | None] | None:
    """One page of instances from the Durable HTTP API, and the next page's token; None if `token` is refused.

    The SDK's get_status_all and get_status_by return the first page alone (100 instances) and drop the
    continuation token, so the listing asks the same endpoint itself.
    """
    options = RpcManagementOptions(runtime_status=[OrchestrationRuntimeStatus(r) for r in runtime])
    url = options.to_url(client._orchestration_bindings.rpc_base_url)  # the SDK has no public accessor
    url += ("&" if "?" in url else "?") + urlencode({"top": top})
    async with aiohttp.ClientSession() as session, \
            session.get(url, headers={"x-ms-continuation-token": token} if token else {}) as response:
        if response.status == 400 and token:
            return None
        response.raise_for_status()
        statuses = [durable_status(DurableOrchestrationStatus.from_json(o)) for o in await response.json()]
        return [s for s in statuses if s], response.headers.get("x-ms-continuation-token") or None


def _top(req: func.HttpRequest) -> int | None | func.HttpResponse:
    text = req.params.get("top")
    if text is None:  # the Functions host drops a key with an empty value from params, but not from the url
        blank = any(key.lower() == "top" for key, _ in parse_qsl(urlsplit(req.url).query, keep_blank_values=True))
        if not blank:
            return None
        text = ""
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        return error(400, f"query parameter top: {text[:20]!r} is not a whole number from 1 to {MAX_PAGE}")
    return int(text)


def _status_filter(req: func.HttpRequest) -> list[str] | func.HttpResponse:
    text = req.params.get("status") or ""
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    for status in wanted:
        if status not in STATUSES:
            return error(400, f"query parameter status: {status[:40]!r} is not one of {', '.join(STATUSES)}")
    return wanted


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _register(name: str, route: str, method: str, handler, version: str) -> None:
    async def function(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        return await handler(req, client, version)

    with_client = bp.durable_client_input(client_name="client")(function)
    bp.function_name(name)(bp.route(route=route, methods=[method])(with_client))


for _prefix, _version in (("", "v1"), ("v1/", "v1"), ("v2/", "v2")):
    _tag = _prefix.replace("/", "_")
    _register(f"{_tag}get_operation", f"{_prefix}operations/{{id}}", "GET", get_operation, _version)
    if _prefix:
        _register(f"{_tag}cancel_operation", f"{_prefix}operations/{{id}}/cancel", "POST", cancel_operation,
                  _version)
        _register(f"{_tag}list_operations", f"{_prefix}operations", "GET", list_operations, _version)
        for _action, _handler in (("pause", pause_operation), ("resume", resume_operation),
                                  ("retry", retry_operation)):
            _register(f"{_tag}{_action}_operation", f"{_prefix}operations/{{id}}/{_action}", "POST", _handler,
                      _version)
