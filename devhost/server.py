"""HTTP front of the local host: HTTP-trigger functions, admin status, keys, durable webhooks.

Each request becomes an RpcHttp invocation of Azure's Python worker (http_rpc.py converts both ways, as
the host does). A function that raises gives a 500 with an empty body and a logged traceback, and the
server keeps serving — as the Functions host does.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from typing import Any, Protocol

from aiohttp import web

from . import protos
from .app_loader import FunctionSpec, LoadedApp
from .durable_api import WEBHOOK_PREFIX
from .http_rpc import to_rpc_http, to_web_response
from .keys import Keys
from .routes import RouteTable

DEFAULT_BODY_LIMIT = 104_857_600  # the Functions host's default request body limit (100 MB)


class Runtime(Protocol):
    def client_binding(self) -> str: ...
    def add_webhook_routes(self, web_app: web.Application) -> None: ...


def _json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _presented_key(request: web.Request) -> str | None:
    return request.headers.get("x-functions-key") or request.query.get("code")


class FunctionsServer:
    """Routes requests to the app's HTTP triggers and guards every route with the app's keys."""

    def __init__(self, app: LoadedApp, runtime: Runtime, keys: Keys, logger: logging.Logger):
        self.app = app
        self.runtime = runtime
        self.keys = keys
        self.log = logger
        self.started = time.monotonic()
        self.running = False
        self.instance_id = uuid.uuid4().hex
        self.routes: RouteTable[FunctionSpec] = RouteTable()
        for spec in app.of_kind("http").values():
            self.routes.add(self._full_template(spec), spec)
        limit = app.settings.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT")
        self.body_limit = int(limit) if limit else DEFAULT_BODY_LIMIT

    def _full_template(self, spec: FunctionSpec) -> str:
        prefix = self.app.config.route_prefix
        return f"{prefix}/{spec.route}" if prefix else spec.route or spec.name

    def public_url(self, spec: FunctionSpec, base_url: str) -> str:
        return f"{base_url}/{self._full_template(spec)}"

    def web_app(self) -> web.Application:
        web_app = web.Application(client_max_size=self.body_limit, middlewares=[self._guard])
        web_app.router.add_get("/admin/host/status", self._host_status)
        self.runtime.add_webhook_routes(web_app)
        web_app.router.add_route("*", r"/{tail:[\s\S]*}", self._dispatch)  # any path, newlines too
        return web_app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Keys, as Azure enforces them: function level for triggers, system/master for webhooks."""
        if request.path == "/admin/host/status" and request.method == "GET":
            return await handler(request)
        if request.path.startswith(WEBHOOK_PREFIX):
            level, function = "system", None
        elif request.path.startswith("/admin/"):
            level, function = "admin", None
        else:
            spec, _, others = self._match(request)
            # Unknown paths answer 404 as in Azure; a known path with a wrong method still needs a key.
            spec = spec or (others[0] if others else None)
            level, function = (spec.auth_level, spec.name) if spec else ("anonymous", None)
        if not self.keys.allows(level, _presented_key(request), function):
            return _json_error(401, "Unauthorized: a valid key is required (x-functions-key header or code query parameter)")
        return await handler(request)

    def _match(self, request: web.Request) -> tuple[FunctionSpec | None, dict[str, str], list[FunctionSpec]]:
        """The function for this path and method, its route values, and the path's functions for other methods."""
        others: list[FunctionSpec] = []
        for spec, params in self.routes.match(request.raw_path.split("?", 1)[0]):
            if not spec.methods or request.method in spec.methods:
                return spec, params, others
            others.append(spec)
        return None, {}, others

    async def _host_status(self, request: web.Request) -> web.Response:
        return web.json_response({
            "id": socket.gethostname(),
            "state": "Running" if self.running else "Initialized",
            "version": "4.x (devhost)",
            "versionDetails": f"devhost: local Functions host for Python v2 apps; worker {self.app.worker.version}",
            "worker": self.app.worker.version,
            "platformVersion": "",
            "instanceId": self.instance_id,
            "computerName": socket.gethostname(),
            "processUptime": int((time.monotonic() - self.started) * 1000),
            "functionAppContentEditingState": "Unknown",
        })

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        spec, params, others = self._match(request)
        if spec is None:
            allowed = [m for other in others for m in other.methods]
            if allowed:
                return _json_error(404, f"{request.method} is not allowed here; allowed: {', '.join(sorted(set(allowed)))}")
            return _json_error(404, "no function matches this route")
        body = await request.read()
        trigger, metadata = to_rpc_http(request, body, params)
        inputs = {spec.trigger_param: trigger}
        for name in spec.client_params:
            inputs[name] = protos.TypedData(string=self.runtime.client_binding())
        invocation = str(uuid.uuid4())
        self.log.info("Executing 'Functions.%s' (Reason='This function was programmatically called via the host APIs.', Id=%s)", spec.name, invocation)
        started = time.perf_counter()
        answer = await self.app.worker.invoke(spec.function_id, inputs, metadata, invocation_id=invocation)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.result.status != protos.StatusResult.Success:
            failure = answer.result.exception
            self.log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n%s\n%s", spec.name, invocation,
                           elapsed, failure.message, failure.stack_trace)
            return web.Response(status=500)  # the host's ExceptionMiddleware: no body
        self.log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", spec.name, invocation, elapsed)
        return to_web_response(answer.return_value)


def describe_routes(server: FunctionsServer, base_url: str) -> list[str]:
    """Start-up listing of functions, in the shape `func start` prints."""
    lines = []
    for spec in sorted(server.app.functions.values(), key=lambda s: (s.kind != "http", s.name)):
        if spec.kind == "http":
            methods = ",".join(spec.methods) or "GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS"
            lines.append(f"\t{spec.name}: [{methods}] {server.public_url(spec, base_url)}")
        else:
            lines.append(f"\t{spec.name}: {spec.kind}Trigger" if spec.kind != "orchestrator" else f"\t{spec.name}: orchestrationTrigger")
    return lines
