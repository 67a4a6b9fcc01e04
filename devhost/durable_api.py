"""The Durable Functions HTTP API: the local RPC endpoint the Python durable client calls, and the public webhooks.

Both serve the same operations, with the extension's paths, query parameters, status codes and JSON fields
(HttpApiHandler): start, status (showHistory/showHistoryOutput/showInput), list with filters and continuation,
terminate, raise event, suspend, resume, purge one or by filter. It also builds what the extension hands to
`durableClient` bindings (the webhook and RPC URLs) and runs the RPC endpoint's web server.

It drives the runtime only through `Runtime`, the few operations it needs; `python -m devhost` wires the two.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web

from . import history as h
from .taskhub import InstanceRecord

RUNTIME_STATUSES = ("Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Pending",
                    "Suspended")
DEFAULT_PAGE_SIZE = 100


class BadRequest(Exception):
    """A query parameter this API cannot use."""


class StartError(ValueError):
    """A start request names no orchestrator or an unusable instance ID (the extension's ArgumentException: 400)."""


class InstanceConflict(RuntimeError):
    """The instance exists and is still running (409; the extension answers 500)."""


class Runtime(Protocol):
    """What the durable HTTP API needs from the runtime: instances, their history, and messages to them."""

    ready: bool  # the task hub is open and all unfinished work is loaded

    def record(self, instance_id: str) -> InstanceRecord | None: ...
    def history_of(self, instance_id: str) -> list[dict[str, Any]]: ...
    def query_instances(self, statuses: list[str], created_from: str | None, created_to: str | None,
                        prefix: str | None, page_size: int, token: str | None
                        ) -> tuple[list[InstanceRecord], str | None]: ...
    def start_new(self, name: str, instance_id: str | None, input_json: str | None) -> str:
        """Raises StartError or InstanceConflict."""
        ...
    def send(self, instance_id: str, event: dict[str, Any]) -> None: ...
    def purge(self, instance_ids: list[str]) -> int: ...
    async def wait_until_ended(self, instance_id: str, timeout: float, interval: float) -> InstanceRecord | None: ...


def _flag(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    if value.strip().lower() not in ("true", "false"):
        raise BadRequest(f"query parameter '{name}' must be true or false")
    return value.strip().lower() == "true"


def _time(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        raise BadRequest(f"query parameter '{name}' is not an ISO 8601 date/time: {value!r}") from None
    return h.iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _statuses(request: web.Request) -> list[str]:
    names = [n.strip() for v in request.query.getall("runtimeStatus", []) for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNTIME_STATUSES]
    if unknown:
        raise BadRequest(f"query parameter 'runtimeStatus': unknown status {', '.join(unknown)}; "
                         f"expected any of {', '.join(RUNTIME_STATUSES)}")
    return names


def _status_time(text: str) -> str:
    return text[:19] + "Z"  # the extension formats with "s" (seconds) and a Z


def _error(status: int, message: str, exception: Exception | None = None) -> web.Response:
    body: dict[str, Any] = {"Message": message}
    if exception is not None:
        body.update(ExceptionMessage=str(exception), ExceptionType=type(exception).__name__)
    return web.json_response(body, status=status)


WEBHOOK_PREFIX = "/runtime/webhooks/durabletask"
RPC_PREFIX = "/durabletask"


class DurableApi:
    """The durable HTTP API of one task hub: its routes, the URLs it hands to clients, and the local RPC server."""

    def __init__(self, runtime: Runtime, hub_name: str, public_base_url: str, system_key: str | None = None):
        self.runtime = runtime
        self.hub_name = hub_name
        self.public_base_url = public_base_url.rstrip("/")
        self.system_key = system_key
        self.rpc_base_url = ""
        self._rpc_runner: web.AppRunner | None = None
        self._binding = ""

    # ------------------------------------------------------------------ the RPC endpoint the durable client calls
    async def start(self) -> None:
        """Serve the RPC endpoint on a free loopback port."""
        rpc_app = web.Application(client_max_size=100 * 1024 * 1024)
        self.add_routes(rpc_app, RPC_PREFIX, public=False)
        self._rpc_runner = web.AppRunner(rpc_app, access_log=None, handle_signals=False)
        await self._rpc_runner.setup()
        await web.TCPSite(self._rpc_runner, "127.0.0.1", 0).start()
        self.rpc_base_url = f"http://127.0.0.1:{self._rpc_runner.addresses[0][1]}{RPC_PREFIX}/"
        self._binding = ""

    async def stop(self) -> None:
        if self._rpc_runner:
            await self._rpc_runner.cleanup()

    # ------------------------------------------------------------------ client binding, webhooks
    def webhook_base(self, origin: str | None = None) -> str:
        return f"{(origin or self.public_base_url).rstrip('/')}{WEBHOOK_PREFIX}"

    def _key_query(self) -> str:
        return f"code={self.system_key}" if self.system_key else ""

    def management_urls(self, instance_id: str, origin: str | None = None) -> dict[str, str]:
        """The check-status payload: management URLs of one instance, as the extension builds them."""
        prefix = f"{self.webhook_base(origin)}/instances/{instance_id}"
        suffix = f"taskHub={self.hub_name}&connection=Storage" + (f"&{self._key_query()}" if self.system_key else "")
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{prefix}?{suffix}",
            "sendEventPostUri": f"{prefix}/raiseEvent/{{eventName}}?{suffix}",
            "terminatePostUri": f"{prefix}/terminate?reason={{text}}&{suffix}",
            "rewindPostUri": f"{prefix}/rewind?reason={{text}}&{suffix}",
            "purgeHistoryDeleteUri": f"{prefix}?{suffix}",
            "restartPostUri": f"{prefix}/restart?{suffix}",
            "suspendPostUri": f"{prefix}/suspend?reason={{text}}&{suffix}",
            "resumePostUri": f"{prefix}/resume?reason={{text}}&{suffix}",
        }

    def client_binding(self) -> str:
        """The JSON the host hands to `durableClient` inputs."""
        if not self._binding:
            base = self.webhook_base()
            query = self._key_query()
            creation = f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
            self._binding = json.dumps({
                "taskHubName": self.hub_name,
                "creationUrls": {
                    "createNewInstancePostUri": f"{creation}?{query}",
                    "createAndWaitOnNewInstancePostUri":
                        f"{creation}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{query}",
                },
                "managementUrls": self.management_urls("INSTANCEID"),
                "baseUrl": base,
                "requiredQueryStringParameters": query,
                "rpcBaseUrl": self.rpc_base_url,
                "httpBaseUrl": self.public_base_url,
                "connectionName": None,
            })
        return self._binding

    def add_webhook_routes(self, web_app: web.Application) -> None:
        self.add_routes(web_app, WEBHOOK_PREFIX, public=True)

    # ------------------------------------------------------------------ routes
    def add_routes(self, app: web.Application, prefix: str, public: bool) -> None:
        handlers = _Handlers(self, public)
        for method, path, handler in (
            ("POST", "/orchestrators/{functionName}", handlers.start),
            ("POST", "/orchestrators/{functionName}/{instanceId}", handlers.start),
            ("GET", "/instances", handlers.list),
            ("GET", "/instances/", handlers.list),
            ("DELETE", "/instances", handlers.purge_by_filter),
            ("DELETE", "/instances/", handlers.purge_by_filter),
            ("GET", "/instances/{instanceId}", handlers.status),
            ("DELETE", "/instances/{instanceId}", handlers.purge),
            ("POST", "/instances/{instanceId}/raiseEvent/{eventName}", handlers.raise_event),
            ("POST", "/instances/{instanceId}/{operation}", handlers.operation),
        ):
            app.router.add_route(method, prefix + path, self._when_started(handler))

    def _when_started(self, handler: Any) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self.runtime.ready:
                return _error(503, "The durable task hub is not running (starting or stopping); retry shortly.")
            return await handler(request)
        return guarded


class _Handlers:
    def __init__(self, api: DurableApi, public: bool):
        self.api = api
        self.runtime = api.runtime
        self.public = public

    def _origin(self, request: web.Request) -> str | None:
        return f"{request.scheme}://{request.host}" if self.public else None

    def _payload(self, record: InstanceRecord, show_input: bool = True,
                 history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        body = {
            "name": record.name,
            "instanceId": record.instance_id,
            "runtimeStatus": record.runtime_status,
            "input": h.json_value(record.input) if show_input else None,
            "customStatus": h.json_value(record.custom_status),
            "output": h.json_value(record.output),
            "createdTime": _status_time(record.created_time),
            "lastUpdatedTime": _status_time(record.last_updated_time),
        }
        if history is not None:
            body["historyEvents"] = history
        return body

    def _check_status(self, request: web.Request, instance_id: str) -> web.Response:
        payload = self.api.management_urls(instance_id, self._origin(request))
        del payload["rewindPostUri"]
        return web.json_response(payload, status=202, headers={"Location": payload["statusQueryGetUri"],
                                                               "Retry-After": "10"})

    async def start(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            input_json = h.dumps(json.loads(body)) if body.strip() else None
        except ValueError as exc:
            return _error(400, "Invalid JSON content", exc)
        name = request.match_info["functionName"]
        try:
            timeout = float(request.query["timeout"]) if "timeout" in request.query else None
            interval = float(request.query["pollingInterval"]) if "pollingInterval" in request.query else None
            instance_id = self.runtime.start_new(name, request.match_info.get("instanceId"), input_json)
        except (StartError, ValueError) as exc:
            return _error(400, "One or more of the arguments submitted is incorrect", exc)
        except InstanceConflict as exc:
            return _error(409, "An orchestration instance with this ID is still running", exc)
        if timeout is None or interval is None:
            return self._check_status(request, instance_id)
        record = await self.runtime.wait_until_ended(instance_id, timeout, interval)
        if record is not None and record.runtime_status == "Completed":
            return web.json_response(h.json_value(record.output))
        if record is not None and record.runtime_status in h.TERMINAL:
            return web.json_response(self._payload(record))
        return self._check_status(request, instance_id)

    async def status(self, request: web.Request) -> web.StreamResponse:
        instance_id = request.match_info["instanceId"]
        try:
            show_history = _flag(request, "showHistory", False)
            show_output = _flag(request, "showHistoryOutput", False)
            show_input = _flag(request, "showInput", True)
            error_on_failure = _flag(request, "returnInternalServerErrorOnFailure", False)
        except BadRequest as exc:
            return _error(400, str(exc))
        record = self.runtime.record(instance_id)
        if record is None:
            return web.Response(status=404)
        events = None
        if show_history and record.runtime_status != "Pending":
            events = h.status_history(self.runtime.history_of(instance_id), show_output, show_input)
        body = self._payload(record, show_input, events)
        status, headers = 200, {}
        if record.runtime_status in ("Running", "Pending", "ContinuedAsNew", "Suspended"):
            status, headers = 202, {"Location": str(request.url), "Retry-After": "5"}
        elif record.runtime_status == "Failed" and error_on_failure:
            status = 500
        return web.json_response(body, status=status, headers=headers)

    async def list(self, request: web.Request) -> web.StreamResponse:
        try:
            statuses = _statuses(request)
            created_from, created_to = _time(request, "createdTimeFrom"), _time(request, "createdTimeTo")
            show_input = _flag(request, "showInput", True)
            top = request.query.get("top")
            page_size = int(top) if top else DEFAULT_PAGE_SIZE
            if page_size < 1:
                raise ValueError
        except BadRequest as exc:
            return _error(400, str(exc))
        except ValueError:
            return _error(400, "query parameter 'top' must be a positive integer")
        token = request.headers.get("x-ms-continuation-token") or None
        try:
            records, next_token = self.runtime.query_instances(
                statuses, created_from, created_to, request.query.get("instanceIdPrefix"), page_size, token)
        except ValueError:
            return _error(400, "header 'x-ms-continuation-token' is not a token this host issued")
        return web.json_response([self._payload(r, show_input) for r in records],
                                 headers={"x-ms-continuation-token": next_token or ""})

    async def purge(self, request: web.Request) -> web.StreamResponse:
        instance_id = request.match_info["instanceId"]
        if self.runtime.record(instance_id) is None:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": self.runtime.purge([instance_id])})

    async def purge_by_filter(self, request: web.Request) -> web.StreamResponse:
        try:
            created_from = _time(request, "createdTimeFrom")
            created_to = _time(request, "createdTimeTo") or h.iso(h.utc_now())
            statuses = _statuses(request)
        except BadRequest as exc:
            return _error(400, str(exc))
        if created_from is None:
            return web.json_response("Please provide value for 'createdTimeFrom' parameter.", status=400)
        ids, token = [], None
        while True:
            records, token = self.runtime.query_instances(statuses, created_from, created_to, None, 1000, token)
            ids += [r.instance_id for r in records if r.runtime_status in h.TERMINAL]
            if token is None:
                break
        deleted = self.runtime.purge(ids)
        if deleted == 0:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": deleted})

    async def operation(self, request: web.Request) -> web.StreamResponse:
        instance_id, operation = request.match_info["instanceId"], request.match_info["operation"].lower()
        if operation in ("rewind", "restart"):
            return _error(501, f"{operation} is not supported by devhost")
        kinds = {"terminate": h.EventType.ExecutionTerminated, "suspend": h.EventType.ExecutionSuspended,
                 "resume": h.EventType.ExecutionResumed}
        if operation not in kinds:
            return web.Response(status=404)
        record = self.runtime.record(instance_id)
        if record is None:
            return web.Response(status=404)
        if record.runtime_status in h.TERMINAL:
            return web.Response(status=410)
        if operation == "suspend" and record.runtime_status == "Suspended" or \
                operation == "resume" and record.runtime_status != "Suspended":
            return _error(409, f"Cannot {operation} the orchestration instance {instance_id} because instance is "
                               f"in the {record.runtime_status} state.")
        reason = request.query.get("reason")
        fields: dict[str, Any] = {"Input": reason} if operation == "terminate" else {"Reason": reason}
        self.runtime.send(instance_id, h.event(kinds[operation], h.iso(h.utc_now()), **fields))
        return web.Response(status=202)

    async def raise_event(self, request: web.Request) -> web.StreamResponse:
        instance_id, name = request.match_info["instanceId"], request.match_info["eventName"]
        record = self.runtime.record(instance_id)
        if record is None:
            return web.Response(status=404)
        if record.runtime_status in h.TERMINAL:
            return web.Response(status=410)
        if request.content_type.lower() != "application/json":
            return _error(400, "Only application/json request content is supported")
        body = await request.read()
        try:
            data = h.dumps(json.loads(body)) if body.strip() else None
        except ValueError as exc:
            return _error(400, "Invalid JSON content", exc)
        self.runtime.send(instance_id, h.event(h.EventType.EventRaised, h.iso(h.utc_now()), Name=name, Input=data))
        return web.Response(status=202)
