"""The Functions language-worker protocol's messages, as plain Python objects for the in-process worker.

Azure's library worker (`azure_functions_runtime`) is handed a `protos` namespace by its caller and builds
and reads messages through it (`protos.TypedData(http=...)`, `pb.WhichOneof("data")`, ...). It ships no
message classes of its own, so this module provides them, written from the published protocol
(azure-functions-language-worker-protobuf, `FunctionRpc.proto`) and from what the worker reads and writes.
Only the messages and fields that cross between devhost and the worker are here. They behave as protobuf
messages do where the worker can tell: every field has its proto3 default when unset (empty string, 0,
empty message, empty list or map), `WhichOneof` names the member of a oneof that was set, and an unknown
field name is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar


class Message:
    """A protocol message: keyword fields with proto3 defaults, and oneof groups."""

    FIELDS: ClassVar[dict[str, Callable[[], Any]]] = {}
    ONEOFS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, **values: Any):
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise ValueError(f'Protocol message {type(self).__name__} has no "{min(unknown)}" field.')
        self._set = {name for name, value in values.items() if value is not None}
        for name in self._set:
            setattr(self, name, values[name])

    def __getattr__(self, name: str) -> Any:
        """An unset field reads as its default, made on first read (sub-messages nest without end)."""
        if name.startswith("_") or name not in self.FIELDS:
            raise AttributeError(name)
        value = self.FIELDS[name]()
        setattr(self, name, value)
        return value

    def WhichOneof(self, group: str) -> str | None:
        return next((name for name in self.ONEOFS[group] if name in self._set), None)

    def HasField(self, name: str) -> bool:
        return name in self._set

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS if name in self._set)
        return f"{type(self).__name__}({shown})"


def _fields(*names: str, default: Callable[[], Any] = str) -> dict[str, Callable[[], Any]]:
    return dict.fromkeys(names, default)


# ---------------------------------------------------------------- data
class NullableString(Message):
    FIELDS = _fields("value")


class NullableDouble(Message):
    FIELDS = _fields("value", default=float)


class NullableBool(Message):
    FIELDS = _fields("value", default=bool)


class Timestamp(Message):
    FIELDS = _fields("seconds", "nanos", default=int)


class NullableTimestamp(Message):
    FIELDS = {"value": Timestamp}


class RpcHttpCookie(Message):
    class SameSite:
        # `None` is a keyword: the worker reads it with getattr(SameSite, "None").
        Lax, Strict, ExplicitNone = 1, 2, 3

    FIELDS = {**_fields("name", "value"), "domain": NullableString, "path": NullableString,
              "expires": NullableTimestamp, "secure": NullableBool, "http_only": NullableBool,
              "same_site": int, "max_age": NullableDouble}


setattr(RpcHttpCookie.SameSite, "None", 0)


class TypedData(Message):
    ONEOFS = {"data": ("string", "json", "bytes", "stream", "http", "int", "double", "collection_bytes",
                       "collection_string", "collection_double", "collection_sint64", "model_binding_data",
                       "collection_model_binding_data")}
    FIELDS = {**_fields("string", "json"), "bytes": bytes, "stream": bytes, "http": lambda: RpcHttp(),
              "int": int, "double": float, **_fields(*ONEOFS["data"][7:], default=lambda: None)}


class RpcHttp(Message):
    FIELDS = {**_fields("method", "url", "status_code"), "headers": dict, "body": TypedData, "params": dict,
              "query": dict, "cookies": list, "enable_content_negotiation": bool, "raw_body": TypedData,
              "identities": list, "nullable_headers": dict, "nullable_params": dict, "nullable_query": dict}


class ParameterBinding(Message):
    ONEOFS = {"rpc_data": ("data", "rpc_shared_memory")}
    FIELDS = {"name": str, "data": TypedData, "rpc_shared_memory": lambda: None}


# ---------------------------------------------------------------- results
class RpcException(Message):
    FIELDS = _fields("source", "stack_trace", "message")


class StatusResult(Message):
    Failure, Success, Cancelled = 0, 1, 2
    FIELDS = {"status": int, "result": str, "exception": RpcException, "logs": list}


class WorkerMetadata(Message):
    FIELDS = {**_fields("runtime_name", "runtime_version", "worker_version", "worker_bitness"),
              "custom_properties": dict}


# ---------------------------------------------------------------- init, metadata, load
class RpcTraceContext(Message):
    FIELDS = {**_fields("trace_parent", "trace_state"), "attributes": dict}


class RetryContext(Message):
    FIELDS = {"retry_count": int, "max_retry_count": int, "exception": RpcException}


class WorkerInitRequest(Message):
    FIELDS = {**_fields("host_version", "worker_directory", "function_app_directory"), "capabilities": dict,
              "log_categories": dict}


class WorkerInitResponse(Message):
    FIELDS = {"worker_version": str, "capabilities": dict, "result": StatusResult, "worker_metadata": WorkerMetadata}


class FunctionsMetadataRequest(Message):
    FIELDS = _fields("function_app_directory")


class BindingInfo(Message):
    out, inout = 1, 2  # and `in`, 0: a keyword, set below
    undefined, string, binary, stream = 0, 1, 2, 3
    FIELDS = {"type": str, "direction": int, "data_type": int, "properties": dict}


setattr(BindingInfo, "in", 0)


class RpcRetryOptions(Message):
    FIELDS = {"max_retry_count": int, "delay_interval": timedelta, "minimum_interval": timedelta,
              "maximum_interval": timedelta, "retry_strategy": str}


class RpcFunctionMetadata(Message):
    FIELDS = {**_fields("name", "directory", "script_file", "entry_point", "function_id", "language"),
              "bindings": dict, "is_proxy": bool, "managed_dependency_enabled": bool, "raw_bindings": list,
              "retry_options": lambda: None, "properties": dict}


class FunctionMetadataResponse(Message):
    FIELDS = {"function_metadata_results": list, "result": StatusResult, "use_default_metadata_indexing": bool}


class FunctionLoadRequest(Message):
    FIELDS = {"function_id": str, "metadata": RpcFunctionMetadata, "managed_dependency_enabled": bool}


class FunctionLoadResponse(Message):
    FIELDS = {"function_id": str, "result": StatusResult, "is_dependency_downloaded": bool}


class FunctionEnvironmentReloadResponse(Message):
    FIELDS = {"worker_metadata": WorkerMetadata, "capabilities": dict, "result": StatusResult}


# ---------------------------------------------------------------- invocation
class InvocationRequest(Message):
    FIELDS = {**_fields("invocation_id", "function_id"), "input_data": list, "trigger_metadata": dict,
              "trace_context": RpcTraceContext, "retry_context": RetryContext}


class InvocationResponse(Message):
    FIELDS = {"invocation_id": str, "output_data": list, "return_value": TypedData, "result": StatusResult}


class StreamingMessage(Message):
    """The envelope: `request_id` and one of the requests the host sends."""

    ONEOFS = {"content": ("worker_init_request", "functions_metadata_request", "function_load_request",
                          "invocation_request")}
    FIELDS = {"request_id": str, "worker_init_request": WorkerInitRequest,
              "functions_metadata_request": FunctionsMetadataRequest, "function_load_request": FunctionLoadRequest,
              "invocation_request": InvocationRequest}
