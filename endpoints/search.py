"""POST /export/search (also under /v1/ and /v2/): what an export by query would take, without starting one (shared/query/preview.py).

Body: `{"queries": [{keyword or tag: QIDO-RS value, ...}, ...], "limit": 100}`, validated as an export's
query source is (a 400 names `queries[i].<key>`). Answer: `{"queries": [...]}`, one entry per query.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError

from shared import settings
from shared.errors import ClientError, Misconfigured, Unavailable
from shared.export.request import parse_queries
from shared.query.preview import preview
from shared.stores.factory import open_store

from .export import FEATURE_FLAG
from .responses import error, error_response, json_response

bp = func.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_BODY = 1024 * 1024


def search(req: func.HttpRequest) -> func.HttpResponse:
    if not settings.get_bool(FEATURE_FLAG, False):
        return error(404, f"export is not enabled on this server (setting {FEATURE_FLAG})")
    try:
        queries, limit = _parse(req.get_body())
        return json_response({"queries": preview(open_store(), list(queries), limit)})
    except (ClientError, Misconfigured, Unavailable, AzureError) as problem:  # Unavailable: the store is down
        return error_response(problem, "search")


for _route in ("export/search", "v1/export/search", "v2/export/search"):
    bp.function_name(_route.replace("/", "_"))(bp.route(route=_route, methods=["POST"])(search))


def _parse(body: bytes) -> tuple[tuple[Any, ...], int]:
    if len(body) > MAX_BODY:
        raise ClientError(413, f"the request body is {len(body)} bytes; the limit is {MAX_BODY}")
    try:
        document = json.loads(body.decode("utf-8-sig") or "null")
    except (UnicodeDecodeError, ValueError):
        raise ClientError(400, "the request body is not a JSON object") from None
    if not isinstance(document, dict):
        raise ClientError(400, "the request body must be a JSON object with queries")
    unknown = sorted(set(document) - {"queries", "limit"})
    if unknown:
        raise ClientError(400, f"unknown property '{unknown[0][:100]}'; expected one of: queries, limit", unknown[0])
    limit = document.get("limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ClientError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    return parse_queries(document.get("queries"), "queries"), limit
