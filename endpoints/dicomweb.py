"""DICOMweb: STOW-RS, QIDO-RS, WADO-RS of one instance, and DELETE, under `/`, `/v1/` and `/v2/`.

Every route template is registered once per version prefix, as its own function, so the routes
stay explicit (no catch-all). Route UIDs are checked before they reach the store: anything but a
valid UID is a 400 naming the parameter, so no request can leave the `<study>/<series>/<sop>.dcm` layout.
They serve the built-in blob store only: when the export reads an external store (`DicomStore__Type`)
they answer 404 saying so, and clients store into that server instead.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import azure.durable_functions as df
import azure.functions as func
from azure.core.exceptions import AzureError

from shared.errors import ClientError, Misconfigured
from shared.stores.blob import qido, stow, wado
from shared.stores.blob.store import DicomStore
from shared.stores.factory import TYPE_SETTING, store_type
from shared.stores.interface import InstanceChangedOrGone
from shared.uids import Identifier, uid_problem

from .responses import error, error_response

bp = df.Blueprint()

VERSION_PREFIXES = ("", "v1/", "v2/")
DICOM_JSON = "application/dicom+json"


@functools.cache
def _store() -> DicomStore:
    """One store (and connection pool) per worker process."""
    return DicomStore.from_settings()


def _uids(req: func.HttpRequest, *names: str) -> list[str]:
    """The named route parameters, each a valid UID; a ClientError names the first that is not."""
    values = []
    for name in names:
        value = req.route_params.get(name, "")
        problem = uid_problem(value)
        if problem:
            shown = value if len(value) <= 80 else value[:80] + "..."
            raise ClientError(400, f"route parameter '{name}' ({shown!r}) {problem}", name)
        values.append(value)
    return values


def _base_url(req: func.HttpRequest) -> str:
    """Where this request's `/studies` lives (scheme, host and version prefix; never the query and its key)."""
    url = urlsplit(req.url)
    return f"{url.scheme}://{url.netloc}{url.path.rpartition('/studies')[0]}"


def store_instances(req: func.HttpRequest) -> func.HttpResponse:
    """STOW-RS: POST studies[/{study}]."""
    study = _uids(req, "study")[0] if "study" in req.route_params else None
    result = stow.store_request(_store(), req.get_body(), req.headers.get("Content-Type"), _base_url(req), study)
    return func.HttpResponse(
        json.dumps(result.dataset), status_code=result.status, mimetype=DICOM_JSON,
        headers={"Content-Type": DICOM_JSON},
    )


def retrieve_instance(req: func.HttpRequest) -> func.HttpResponse:
    """WADO-RS: GET studies/{study}/series/{series}/instances/{sop}, whole, in one response body."""
    study, series, sop = _uids(req, "study", "series", "sop")
    try:
        found = wado.retrieve(_store(), study, series, sop, req.headers.get("Accept"))
    except InstanceChangedOrGone:
        return error(404, f"instance {study}/{series}/{sop} is not in the store")
    mimetype = found.content_type.split(";")[0]
    return func.HttpResponse(found.body, mimetype=mimetype, headers={"Content-Type": found.content_type})


def search(req: func.HttpRequest) -> func.HttpResponse:
    """QIDO-RS: GET studies, studies/{study}/series, studies/{study}/series/{series}/instances."""
    names = [name for name in ("study", "series") if name in req.route_params]
    level = ("study", "series", "instance")[len(names)]
    rows = qido.search(_store(), level, parse_qsl(urlsplit(req.url).query, keep_blank_values=True),
                       *_uids(req, *names))
    return func.HttpResponse(json.dumps(rows), mimetype=DICOM_JSON, headers={"Content-Type": DICOM_JSON})


def delete(req: func.HttpRequest) -> func.HttpResponse:
    """DELETE studies/{study}[/series/{series}[/instances/{sop}]]: 204, or 404 when nothing matched."""
    names = [name for name in ("study", "series", "sop") if name in req.route_params]
    identifier = Identifier(*_uids(req, *names))
    if not _store().delete(identifier):
        return error(404, f"nothing stored under {identifier.level} {identifier}")
    return func.HttpResponse(status_code=204)


ROUTES: tuple[tuple[str, str, str, Callable[[func.HttpRequest], func.HttpResponse]], ...] = (
    ("store_instances", "POST", "studies", store_instances),
    ("store_study_instances", "POST", "studies/{study}", store_instances),
    ("retrieve_instance", "GET", "studies/{study}/series/{series}/instances/{sop}", retrieve_instance),
    ("search_studies", "GET", "studies", search),
    ("search_series", "GET", "studies/{study}/series", search),
    ("search_instances", "GET", "studies/{study}/series/{series}/instances", search),
    ("delete_study", "DELETE", "studies/{study}", delete),
    ("delete_series", "DELETE", "studies/{study}/series/{series}", delete),
    ("delete_instance", "DELETE", "studies/{study}/series/{series}/instances/{sop}", delete),
)


def _register(name: str, method: str, route: str, handler: Callable[[func.HttpRequest], func.HttpResponse]):
    def function(req: func.HttpRequest) -> func.HttpResponse:
        try:
            if store_type() != "blob":
                return error(404, f"this server has no DICOM store of its own: the export reads the external "
                                   f"store named by setting {TYPE_SETTING}; store into that server instead")
            return handler(req)
        except (ClientError, Misconfigured, AzureError) as problem:  # AzureError: the store is down or refusing us
            return error_response(problem, name)

    bp.function_name(name)(bp.route(route=route, methods=[method])(function))


for _prefix in VERSION_PREFIXES:
    for _name, _method, _route, _handler in ROUTES:
        _register(_prefix.replace("/", "_") + _name, _method, _prefix + _route, _handler)
