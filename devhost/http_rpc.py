"""HTTP requests to RpcHttp and RpcHttp replies back, converted as the Functions host converts them.

Each rule names the host code it follows (Azure/azure-functions-host, src/WebJobs.Script.Grpc/
MessageExtensions/GrpcMessageConversionExtensions.cs and Http/ ... ): see devhost/README.md's table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from . import protos


def _joined(pairs: Any) -> dict[str, str]:
    """Repeated keys joined with commas, as ASP.NET Core's StringValues.ToString() joins them."""
    joined: dict[str, list[str]] = {}
    for key, value in pairs:
        joined.setdefault(key, []).append(value)
    return {key: ",".join(values) for key, values in joined.items()}


def to_rpc_http(request: web.Request, body: bytes, route_values: Mapping[str, str]) -> protos.TypedData:
    """The trigger input the worker receives for `request`."""
    headers = {name.lower(): value for name, value in _joined(request.headers.items()).items() if value}
    query = {name: value for name, value in _joined(request.query.items()).items() if value}
    http = protos.RpcHttp(
        method=request.method,
        url=str(request.url),
        headers=headers,
        query=query,
        params=dict(route_values),
        body=protos.TypedData(bytes=body) if body else None,
    )
    return protos.TypedData(http=http)


def to_web_response(value: protos.TypedData) -> web.Response:
    """The reply for an HTTP function's `$return` value."""
    kind = value.WhichOneof("data")
    if kind is None:
        return web.Response(status=204)
    if kind != "http":
        return web.Response(status=200, body=_body(value))
    http = value.http
    headers: CIMultiDict[str] = CIMultiDict(http.headers)
    for cookie in http.cookies:
        headers.add("Set-Cookie", _set_cookie(cookie))
    status = int(http.status_code) if http.status_code else 200
    return web.Response(status=status, body=_body(http.body), headers=headers)


def _body(data: protos.TypedData) -> bytes:
    kind = data.WhichOneof("data")
    if kind is None:
        return b""
    value = getattr(data, kind)
    return value if isinstance(value, bytes) else str(value).encode()


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
