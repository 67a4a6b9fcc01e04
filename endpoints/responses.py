"""JSON responses shared by the HTTP endpoints: bodies and errors in one shape, `{"error": "..."}`."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError

from shared.errors import ClientError, Misconfigured, Unavailable

log = logging.getLogger(__name__)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json",
                             headers=headers or {})


def error(status: int, message: str) -> func.HttpResponse:
    """A client-facing error: the message says what is wrong and names the field or setting at fault."""
    return json_response({"error": message}, status)


def error_response(problem: Exception, where: str) -> func.HttpResponse:
    """The answer to an error of shared/errors.py, for every endpoint (`where` names it in the log).

    The client's fault is its 4xx; a misconfiguration a 500 naming the setting; a store that is down or
    refusing us (the Azure SDK's errors included) a 503 to try again later. Anything else is a bug and is
    re-raised: the host answers 500 and logs the trace.
    """
    if isinstance(problem, ClientError):
        return error(problem.status, str(problem))
    if isinstance(problem, Misconfigured):
        log.error("%s: %s", where, problem)
        return error(500, f"the server is misconfigured: {problem}")
    if isinstance(problem, AzureError):
        log.error("%s: storage error", where, exc_info=problem)
        return error(503, f"the DICOM store is unavailable ({type(problem).__name__}); try again later")
    if isinstance(problem, Unavailable):
        log.error("%s: %s", where, problem)
        return error(503, f"{problem}; try again later")
    raise problem
