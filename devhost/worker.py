"""Azure's own Python worker (`azure_functions_runtime`, the library worker of Python 3.13+), driven in-process.

devhost plays the .NET host's part: it sends the worker the messages the host sends (init with the app
directory and the host's capabilities, the metadata request, one load request per function, invocation
requests with TypedData inputs) and acts on the answers. The worker indexes the app, converts bindings and
runs the functions (sync ones in its own thread pool), so an app it refuses is refused here too, with its
own message, and what it runs here is what it runs in Azure.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure_functions_runtime as runtime
from azure_functions_runtime.version import VERSION

from . import protos

WORKER_NAME = "azure-functions-runtime"
# What the 4.x host offers at init (GrpcWorkerChannel.GetWorkerInitRequest): only MultiStream.
HOST_CAPABILITIES = {"MultiStream": "10"}
HOST_VERSION = "4.0.0"  # the host version devhost stands in for (Functions runtime 4.x)
# The host sets this for the worker process when the app does not (DefaultWorkerProcessFactory).
HOST_THREAD_COUNT = "1000"


INDEXED = "Successfully indexed function app."


class IndexedSummary(logging.Filter):
    """The worker's "Successfully indexed function app." line, short at INFO, whole at DEBUG.

    azure-functions-runtime 1.3.0 logs it as one JSON object whose "functions" text repeats, for every
    function, the bindings of all functions before it (index_functions never resets its list), so it grows
    with the square of the app's size: 37 KB for this app. Here it becomes a one-line summary; the worker's
    own text goes to the `devhost.worker` logger at DEBUG (`python -m devhost --verbose` shows it).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if not text.startswith("{") or INDEXED not in text:
            return True
        try:
            data = json.loads(text)
        except ValueError:
            return True
        if data.get("message") != INDEXED:
            return True
        logging.getLogger("devhost.worker").debug("%s", text)
        record.msg, record.args = ("%s %s function(s), azure-functions %s (the worker's full text at DEBUG)",
                                   (INDEXED, data.get("function_count"), data.get("azure-functions version")))
        return True


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
        # As the proxy worker: the call's properties (protos, host) go with init only.
        properties = self.properties if "worker_init_request" in content else {}
        return await handler(_Envelope(message, properties))

    def _prepare_process(self) -> None:
        """The worker process as the host and the proxy worker set it up before init.

        The proxy worker drops the working directory from sys.path and appends the app's root
        (AzureWebJobsScriptRoot) at the end, so the app's modules never shadow installed packages.
        """
        app_dir = str(self.app_dir)
        os.environ.setdefault("AzureWebJobsScriptRoot", app_dir)
        os.environ.setdefault("PYTHON_THREADPOOL_THREAD_COUNT", HOST_THREAD_COUNT)
        cwd = os.getcwd()
        sys.path[:] = [p for p in sys.path if p not in ("", cwd)]
        sys.path.append(os.environ["AzureWebJobsScriptRoot"])
        sys.path_importer_cache.clear()

    async def start(self) -> list[protos.RpcFunctionMetadata]:
        """Init, index and load the app; WorkerRefused with the worker's message if it will not."""
        app_dir = str(self.app_dir)
        self._prepare_process()
        runtime.start_threadpool_executor()
        init = await self._send(worker_init_request=protos.WorkerInitRequest(
            host_version=HOST_VERSION, function_app_directory=app_dir,
            worker_directory=str(Path(runtime.__file__).parent), capabilities=HOST_CAPABILITIES))
        _check(init.result, "the worker could not index the app")
        answer = await self._send(functions_metadata_request=protos.FunctionsMetadataRequest(
            function_app_directory=app_dir))
        _check(answer.result, "the worker could not list the app's functions")
        indexed = list(answer.function_metadata_results or [])
        for metadata in indexed:
            # The host's load request carries the function's description without its raw bindings.
            described = protos.RpcFunctionMetadata(
                name=metadata.name, directory=metadata.directory, entry_point=metadata.entry_point,
                script_file=metadata.script_file, is_proxy=False, properties=metadata.properties,
                bindings={name: protos.BindingInfo(type=b.type, direction=b.direction, data_type=b.data_type)
                          for name, b in metadata.bindings.items()})
            loaded = await self._send(function_load_request=protos.FunctionLoadRequest(
                function_id=metadata.function_id, metadata=described))
            _check(loaded.result, f"the worker could not load {metadata.name}")
        return indexed

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
