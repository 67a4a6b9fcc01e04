"""Operation status, cancel and listing: the durable instance's status in the DICOM operation shape.

    GET  operations/{id}, v1/operations/{id}, v2/operations/{id}   202 + Location while running, 200 when done
    POST v1/operations/{id}/cancel, v2/...                          terminate → 202
    GET  v1/operations, v2/operations [?status=running,failed]     all of them, newest first
         ... [&top=N][&continuationToken=T]                        one page of N, and the token of the next

Unversioned routes answer like v1 (`completed`); v2 says `succeeded`. A cancel terminates the
orchestration at once; a copy activity already running finishes its batch (its files land in the
destination) but its result is discarded, so the counts stay those reached at cancel.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus
from azure.durable_functions.models.RpcManagementOptions import RpcManagementOptions

from shared.export.operation import (
    STATUSES,
    is_export,
    is_operation_id,
    is_terminal,
    operation_view,
    runtime_statuses,
)

from .export import accepted
from .responses import error, json_response

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
MAX_PAGE = 1000  # the Durable HTTP API's page sizes go this far
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
    }


async def find_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                         version: str) -> dict[str, Any] | func.HttpResponse:
    """The operation view of the route's id, or the 400/404 response saying why there is none."""
    operation_id = req.route_params.get("id", "")
    if not is_operation_id(operation_id):
        shown = operation_id if len(operation_id) <= 40 else operation_id[:40] + "..."
        return error(400, f"operation id {shown!r} is malformed: expected 32 lowercase hexadecimal characters")
    found = durable_status(await client.get_status(operation_id, show_input=True))
    if not found or not is_export(found):
        return error(404, f"operation {operation_id} does not exist")
    return operation_view(found, version)


async def get_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str):
    view = await find_operation(req, client, version)
    if isinstance(view, func.HttpResponse):
        return view
    if is_terminal(view):
        return json_response(view, 200)
    return json_response(view, 202, {"Location": _without_query(req.url)})


async def cancel_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str):
    view = await find_operation(req, client, version)
    if isinstance(view, func.HttpResponse):
        return view
    operation_id = view["operationId"]
    if view["status"] != "canceled":
        if is_terminal(view):
            return error(409, f"operation {operation_id} is already {view['status']}; nothing to cancel")
        await client.terminate(operation_id, "canceled by the client")
    return accepted(req, version, operation_id)


async def list_operations(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str):
    """All exports newest first; with `top`, one page in the task hub's order and the next page's token."""
    wanted = _status_filter(req)
    if isinstance(wanted, func.HttpResponse):
        return wanted
    top = _top(req)
    if isinstance(top, func.HttpResponse):
        return top
    runtime = sorted({r for status in wanted for r in runtime_statuses(status)})
    token = req.params.get("continuationToken") or None
    if token is not None and not (len(token) <= MAX_TOKEN and token.isascii() and token.isprintable()):
        return error(400, "query parameter continuationToken: not a token this service issued")
    found: list[dict[str, Any]] = []
    while True:
        page = await _status_page(client, runtime, top or MAX_PAGE, token)
        if page is None:
            return error(400, "query parameter continuationToken: not a token this service issued")
        statuses, token = page
        found += [s for s in statuses if is_export(s)]
        if top or not token:
            break
    views = [operation_view(s, version) for s in found]
    if not top:
        views.sort(key=lambda v: v["createdTime"] or "", reverse=True)
    return json_response({"operations": views, **({"continuationToken": token} if token else {})})


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
    if text is None:
        return None
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
