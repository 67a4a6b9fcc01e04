"""HTTP requests to RpcHttp and RpcHttp replies back, converted as the Functions host converts them.

The rules, each from the host's own code (Azure/azure-functions-host, and the HTTP extension in
Azure/azure-webjobs-sdk-extensions), for a worker with the capabilities the Python worker declares
(RawHttpBodyBytes, RpcHttpBodyOnly, RpcHttpTriggerMetadataRemoved; not UseNullableValueDictionaryForHttp):

Request (GrpcMessageConversionExtensions.ToRpcHttp):
- url is `{scheme}://{Host header}{path}{query string}`, path and query as sent (still escaped).
- header names are lower-cased; a repeated header is one entry, its values joined with "," (ASP.NET's
  StringValues.ToString); empty values are kept.
- query keys are case-insensitive (the first spelling is kept), values are decoded, repeated values
  joined with ","; a key whose value is empty is dropped.
- params are the matched route values; an optional one that did not match is left out.
- the body is sent only when Content-Length is above 0 (so a chunked request arrives without one),
  always as bytes.
- trigger metadata (HttpTriggerAttributeBindingProvider.GetRequestBindingData, less what
  RpcHttpTriggerMetadataRemoved drops): each query key but `code` with its last value, each route value,
  `Query` (last values, `code` included) and `Headers` as JSON. Not sent: the top-level properties of a
  JSON-looking body, which the host also adds; the Python worker reads none of these for HTTP.

Reply (HttpBinding.CreateResult, RawScriptResult.ExecuteResultAsync):
- status_code is parsed as an integer; empty or not a number gives 200.
- headers are set as given, cookies appended as Set-Cookie; a `string` body with no content type is
  `text/plain; charset=utf-8`; bytes with none go out with none.
- no output at all gives 200 with an empty body; a failed invocation gives 500 with an empty body
  (ExceptionMiddleware).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from aiohttp import web
from multidict import CIMultiDict

from . import protos


def _joined(pairs: Iterable[tuple[str, str]], fold: bool) -> dict[str, str]:
    """Repeated keys as one entry with the values joined by ","; `fold`: keys compared case-insensitively."""
    joined: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for key, value in pairs:
        name = spelling.setdefault(key.lower() if fold else key, key)
        joined.setdefault(name, []).append(value)
    return {key: ",".join(values) for key, values in joined.items()}


def _last(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    last: dict[str, str] = {}
    for key, value in pairs:
        last[key] = value
    return last


def to_rpc_http(request: web.Request, body: bytes, route_values: Mapping[str, str | None]
                ) -> tuple[protos.TypedData, dict[str, protos.TypedData]]:
    """The trigger input the worker receives for `request`, and the invocation's trigger metadata."""
    headers = {name.lower(): value for name, value in _joined(request.headers.items(), fold=True).items()}
    query = {key: value for key, value in _joined(request.query.items(), fold=True).items() if value}
    params = {name: value for name, value in route_values.items() if value is not None}
    url = f"{request.scheme}://{request.headers.get('Host', request.host)}{request.raw_path}"
    has_body = (request.content_length or 0) > 0
    http = protos.RpcHttp(method=request.method, url=url, headers=headers, query=query, params=params,
                          body=protos.TypedData(bytes=body) if has_body else None)
    last_query = _last(request.query.items())
    metadata = {key: protos.TypedData(string=value) for key, value in last_query.items() if key.lower() != "code"}
    metadata.update({name: protos.TypedData(string=value) for name, value in params.items()})
    metadata["Query"] = protos.TypedData(json=json.dumps(last_query, separators=(",", ":")))
    metadata["Headers"] = protos.TypedData(json=json.dumps(_joined(request.headers.items(), fold=True),
                                                           separators=(",", ":")))
    return protos.TypedData(http=http), metadata


def to_web_response(value: protos.TypedData) -> web.Response:
    """The reply for an HTTP function's `$return` value."""
    kind = value.WhichOneof("data")
    if kind is None:
        return web.Response(status=200)
    if kind != "http":
        return _with_body(web.Response(status=200), value, CIMultiDict())
    http = value.http
    headers: CIMultiDict[str] = CIMultiDict(http.headers)
    for cookie in http.cookies:
        headers.add("Set-Cookie", _set_cookie(cookie))
    status = int(http.status_code) if http.status_code.strip().lstrip("+-").isdigit() else 200
    return _with_body(web.Response(status=status), http.body, headers)


def _with_body(response: web.Response, data: protos.TypedData, headers: CIMultiDict[str]) -> web.Response:
    kind = data.WhichOneof("data")
    value = getattr(data, kind) if kind else b""
    if kind in ("string", "json") and "content-type" not in headers:
        headers["Content-Type"] = "text/plain; charset=utf-8"
    response.body = value if isinstance(value, bytes) else str(value).encode()
    response.headers.extend(headers)
    return response


def _set_cookie(cookie: protos.RpcHttpCookie) -> str:
    parts = [f"{cookie.name}={cookie.value}"]
    if cookie.HasField("domain"):
        parts.append(f"domain={cookie.domain.value}")
    if cookie.HasField("path"):
        parts.append(f"path={cookie.path.value}")
    if cookie.HasField("max_age"):
        parts.append(f"max-age={int(cookie.max_age.value)}")
    if cookie.HasField("secure") and cookie.secure.value:
        parts.append("secure")
    if cookie.HasField("http_only") and cookie.http_only.value:
        parts.append("httponly")
    same_site = {protos.RpcHttpCookie.SameSite.Lax: "lax", protos.RpcHttpCookie.SameSite.Strict: "strict",
                 protos.RpcHttpCookie.SameSite.ExplicitNone: "none"}.get(cookie.same_site)
    if same_site:
        parts.append(f"samesite={same_site}")
    return "; ".join(parts)
