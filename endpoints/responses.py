"""JSON responses shared by the HTTP endpoints: bodies and errors in one shape, `{"error": "..."}`."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json",
                             headers=headers or {})


def error(status: int, message: str) -> func.HttpResponse:
    """A client-facing error: the message says what is wrong and names the field or setting at fault."""
    return json_response({"error": message}, status)
