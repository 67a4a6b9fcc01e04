"""GET openapi.yaml: the OpenAPI description of every route, served from openapi.yaml next to function_app.py.

Function level, like every other route: where keys are configured the description needs a key too,
so it reveals nothing to a caller who could not use the API anyway. tests/security/test_openapi.py
checks that it lists exactly the routes this app registers.
"""

from __future__ import annotations

import functools
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"


@functools.cache
def _spec() -> bytes:
    return SPEC.read_bytes()


@bp.function_name("openapi")
@bp.route(route="openapi.yaml", methods=["GET"])
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(_spec(), mimetype="application/yaml")
