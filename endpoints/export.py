"""POST /export, /v1/export, /v2/export: validate, prepare the destination, start the orchestration.

POST /partitions/{partitionName}/export (also under /v1/ and /v2/) exports from that data partition of a
DICOMweb store that has them (shared/stores/factory.export_partition); any other store answers 400.

Nothing is started and nothing written unless the request is valid and the destination accepts
the empty errors.log. An `Idempotency-Key` header makes a retried POST safe: the operation id is
derived from the key, so a repeat finds the operation the first attempt started and answers 202
with the same id (422 if the key was used for a different request).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import replace
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from shared import settings
from shared.errors import ClientError, Misconfigured
from shared.export import events
from shared.export.operation import ORCHESTRATOR, durable_json
from shared.export.request import parse_export_request
from shared.export.settings import ExportSettings
from shared.export.steps import prepare
from shared.secrets import digest
from shared.stores.factory import check_settings, export_partition

from .responses import error, error_response, json_response

log = logging.getLogger(__name__)
bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)

FEATURE_FLAG = "DicomServer__Features__EnableExtendedExport"
IDEMPOTENCY_NAMESPACE = uuid.UUID("8f6b2c1e-5d0a-4c57-9a43-2f1e0b7d9c61")
MAX_KEY_LENGTH = 255


def operation_href(req: func.HttpRequest, version: str, operation_id: str) -> str:
    """`<base url>/<version>/operations/<id>`, the base taken from the request (never its query)."""
    url = urlsplit(req.url)
    return f"{url.scheme}://{url.netloc}/{version}/operations/{operation_id}"


def accepted(req: func.HttpRequest, version: str, operation_id: str) -> func.HttpResponse:
    href = operation_href(req, version, operation_id)
    return json_response({"id": operation_id, "href": href}, 202, {"Location": href})


def idempotent_operation_id(key: str) -> str:
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, key).hex


async def start_export(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str,
                       partition: str | None = None):
    """`partition`: the data partition the route names (None on the routes without one)."""
    if not settings.get_bool(FEATURE_FLAG, False):
        return error(404, f"export is not enabled on this server (setting {FEATURE_FLAG})")
    try:
        policy = ExportSettings.from_settings()
        check_settings()
    except Misconfigured as misconfigured:
        return error_response(misconfigured, "export cannot start")
    try:
        read = export_partition(partition)
        request = replace(parse_export_request(req.get_body(), req.headers.get("Content-Type"), policy), partition=read)
        key = req.headers.get("Idempotency-Key")
        request_digest = None
        if key is None:
            operation_id = uuid.uuid4().hex
        else:
            if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
                return error(400, f"header Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
            operation_id, request_digest = idempotent_operation_id(key), digest(request.canonical())
            repeat = await _repeat(req, client, version, operation_id, request_digest)
            if repeat:
                return repeat
        checkpoint = prepare(request, operation_id, policy, request_digest)
    except (ClientError, Misconfigured) as problem:  # the request (destination included), or a secret key setting
        return error_response(problem, "export cannot start")
    try:
        await client.start_new(ORCHESTRATOR, operation_id, checkpoint.to_json())
    except Exception:  # the SDK's only sign of a refused start (the id is taken)
        # A concurrent retry with the same Idempotency-Key started it first: answer as to any repeat.
        repeat = await _repeat(req, client, version, operation_id, request_digest) if request_digest else None
        if repeat is None:
            raise
        return repeat
    events.emit(events.STARTED, operationId=operation_id, identifiers=len(checkpoint.identifiers),
                deidentified=checkpoint.deidentification is not None)
    return accepted(req, version, operation_id)


async def _repeat(req: func.HttpRequest, client: df.DurableOrchestrationClient, version: str, operation_id: str,
                  request_digest: str) -> func.HttpResponse | None:
    """The answer to a repeated Idempotency-Key (202 with its operation, or 422); None when it is new."""
    existing = await client.get_status(operation_id, show_input=True)
    if not existing:
        return None
    if (durable_json(existing.input_) or {}).get("requestDigest") != request_digest:
        return error(422, "header Idempotency-Key was already used for a different export request")
    return accepted(req, version, operation_id)


def _register(route: str, version: str) -> None:
    async def function(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        partition = req.route_params.get("partitionName") if "{partitionName}" in route else None
        return await start_export(req, client, version, partition)

    name = re.sub(r"[^A-Za-z0-9_]", "", route.replace("/", "_"))
    with_client = bp.durable_client_input(client_name="client")(function)
    bp.function_name(name)(bp.route(route=route, methods=["POST"])(with_client))


for _prefix, _version in (("", "v1"), ("v1/", "v1"), ("v2/", "v2")):
    _register(f"{_prefix}export", _version)
    _register(f"{_prefix}partitions/{{partitionName}}/export", _version)
