"""Azure's own Python worker (`azure_functions_runtime`, the library worker of Python 3.13+), driven in-process.

devhost plays the .NET host's part: it sends the worker the messages the host sends (init with the app
directory and the host's capabilities, the metadata request, one load request per function, invocation
requests with TypedData inputs) and acts on the answers. The worker indexes the app, converts bindings and
runs the functions (sync ones in its own thread pool), so an app it refuses is refused here too, with its
own message, and what it runs here is what it runs in Azure.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure_functions_runtime as runtime
from azure_functions_runtime.version import VERSION

from . import protos

WORKER_NAME = "azure-functions-runtime"
# What the 4.x host offers the worker at init (WorkerInitRequest.capabilities); see README's table.
HOST_CAPABILITIES: dict[str, str] = {}


class WorkerRefused(Exception):
    """The worker answered Failure: the message is its own."""


@dataclass(frozen=True)
class _Envelope:
    """What the proxy worker hands each library entry point: the message and the call's properties."""

    request: protos.StreamingMessage
    properties: dict[str, Any] = field(default_factory=dict)


def _check(result: protos.StatusResult, step: str) -> None:
    if result.status != protos.StatusResult.Success:
        raise WorkerRefused(f"{step}: {result.exception.message}".rstrip(": "))


class Worker:
    """One library worker serving one app directory."""

    def __init__(self, app_dir: Path, host: str = "127.0.0.1"):
        self.app_dir = app_dir
        self.properties = {"host": host, "protos": protos}
        self.metadata: list[protos.RpcFunctionMetadata] = []

    @property
    def version(self) -> str:
        return f"{WORKER_NAME} {VERSION}"

    async def _send(self, **content: Any) -> Any:
        message = protos.StreamingMessage(request_id=uuid.uuid4().hex, **content)
        handler = {
            "worker_init_request": runtime.worker_init_request,
            "functions_metadata_request": runtime.functions_metadata_request,
            "function_load_request": runtime.function_load_request,
            "invocation_request": runtime.invocation_request,
        }[next(iter(content))]
        return await handler(_Envelope(message, self.properties))

    async def start(self) -> list[protos.RpcFunctionMetadata]:
        """Init, index and load the app; WorkerRefused with the worker's message if it will not."""
        app_dir = str(self.app_dir)
        if app_dir not in sys.path:
            sys.path.insert(0, app_dir)
        runtime.start_threadpool_executor()
        init = await self._send(worker_init_request=protos.WorkerInitRequest(
            host_version="4.0.0", function_app_directory=app_dir, worker_directory=app_dir,
            capabilities=HOST_CAPABILITIES))
        _check(init.result, "the worker could not index the app")
        answer = await self._send(functions_metadata_request=protos.FunctionsMetadataRequest(
            function_app_directory=app_dir))
        _check(answer.result, "the worker could not list the app's functions")
        self.metadata = list(answer.function_metadata_results or [])
        for metadata in self.metadata:
            loaded = await self._send(function_load_request=protos.FunctionLoadRequest(
                function_id=metadata.function_id, metadata=metadata))
            _check(loaded.result, f"the worker could not load {metadata.name}")
        return self.metadata

    async def invoke(self, function_id: str, inputs: dict[str, protos.TypedData],
                     trigger_metadata: dict[str, protos.TypedData] | None = None,
                     invocation_id: str | None = None) -> protos.InvocationResponse:
        """One invocation; the response's result says whether the function raised."""
        request = protos.InvocationRequest(
            invocation_id=invocation_id or str(uuid.uuid4()), function_id=function_id,
            input_data=[protos.ParameterBinding(name=name, data=data) for name, data in inputs.items()],
            trigger_metadata=trigger_metadata or {})
        return await self._send(invocation_request=request)

    def stop(self) -> None:
        runtime.stop_threadpool_executor()


def raw_bindings(metadata: protos.RpcFunctionMetadata) -> list[dict[str, Any]]:
    """The function's bindings as the worker described them (function.json's shape)."""
    return [json.loads(raw) for raw in metadata.raw_bindings]
