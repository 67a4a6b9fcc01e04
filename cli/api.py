"""The HTTP client: the only way the CLI talks to the service, so it works the same locally and on Azure.

One `Api` holds a requests Session with the base URL and the function key (sent as the
`x-functions-key` header, never in the URL, so it does not end up in proxies' logs).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

DEFAULT_URL = "http://127.0.0.1:7071"
# The statuses after which an operation never changes (v1 says "completed", v2 "succeeded"); the one list for
# every client (the CLI, tests, benchmarks, the demo). shared/export/operation.py holds the service's, and
# tests/cli/test_commands.py pins the two equal.
TERMINAL = frozenset({"completed", "succeeded", "failed", "canceled"})


def is_terminal(operation: dict) -> bool:
    return str(operation.get("status", "")).lower() in TERMINAL


class SizedReader(Protocol):
    """A request body read as it is sent, whose length is known up front (so no chunked encoding)."""

    def read(self, size: int = -1) -> bytes: ...

    def __len__(self) -> int: ...


class ApiError(Exception):
    """The service answered, but not with what was asked for (4xx/5xx); `message` is its own words."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Unreachable(Exception):
    """No answer at all: wrong URL, host down, TLS or timeout."""


def error_message(response: requests.Response) -> str:
    """The service's reason for an error response, from its JSON body when it has one."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason or "no reason given"
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "title"):
            value = body.get(key) or body.get(key.capitalize())
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
    return str(body)[:500]


@dataclass
class Api:
    """The service at `base_url`; `key` is the function key (None for anonymous routes or the local host)."""

    base_url: str = DEFAULT_URL
    key: str | None = None
    timeout: float = 60.0
    session: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def from_env(cls, url: str | None = None, key: str | None = None) -> Api:
        return cls(
            (url or os.environ.get("DICOM_EXPORT_URL") or DEFAULT_URL).rstrip("/"),
            key or os.environ.get("DICOM_EXPORT_KEY") or None,
        )

    def request(self, method: str, path: str, ok: tuple[int, ...] = (200, 202), **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.key:
            headers["x-functions-key"] = self.key
        try:
            response = self.session.request(
                method, self.base_url + path, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as e:
            raise Unreachable(f"cannot reach {self.base_url}: {self._why_unreachable(e)}") from None
        if response.status_code not in ok:
            raise ApiError(response.status_code, error_message(response))
        return response

    def _why_unreachable(self, error: requests.RequestException) -> str:
        """The cause in words and what to check; requests' own message is long and repeats the URL."""
        if isinstance(error, requests.exceptions.SSLError):
            return "TLS failed (the local host speaks plain http://)"
        if isinstance(error, requests.Timeout):
            return f"no answer within {self.timeout:g} s"
        if isinstance(error, requests.ConnectionError):
            return "no connection (is the service running there? check --url or DICOM_EXPORT_URL)"
        if isinstance(error, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                              requests.exceptions.InvalidURL)):
            return "not a valid http:// or https:// URL (--url or DICOM_EXPORT_URL)"
        return type(error).__name__

    # --- DICOMweb store ---------------------------------------------------------------------------

    def stow(self, body: SizedReader, content_type: str) -> requests.Response:
        """POST one multipart/related STOW-RS request; 200, 202 and 409 all carry a per-instance answer."""
        return self.request(
            "POST", "/studies", ok=(200, 202, 409), data=body,
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        )

    # --- export operations ------------------------------------------------------------------------

    def start_export(self, request: dict, idempotency_key: str | None = None, route: str = "/v1/export") -> dict:
        """POST /export; the answer is {"id", "href"}."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", route, json=request, headers=headers).json()

    def search(self, queries: list[dict[str, str]], limit: int) -> list[dict]:
        """POST /export/search: per query, what an export by it would take."""
        return self.request("POST", "/export/search", json={"queries": queries, "limit": limit}).json()["queries"]

    def operation(self, operation_id: str) -> dict:
        return self.request("GET", f"/v1/operations/{operation_id}").json()

    def wait(self, operation_id: str, interval: float = 1.0, patience: float = 60.0, timeout: float | None = None,
             seen: Callable[[dict, Exception | None], None] | None = None) -> dict:
        """Poll the operation every `interval` seconds until it ends; its final status.

        A long export outlives network blips and host restarts: polls may go unanswered (or answer 5xx)
        for up to `patience` seconds in a row before we give up (a 4xx ends it at once). `seen(operation,
        error)` is told each answer (error None) and each failed poll (with the last answer). TimeoutError
        if it is still running after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        operation = self.operation(operation_id)
        unanswered_since: float | None = None
        while not is_terminal(operation):
            if seen:
                seen(operation, None)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"operation {operation_id} still {operation.get('status')} after {timeout:g} s")
            time.sleep(interval)
            try:
                operation = self.operation(operation_id)
                unanswered_since = None
            except (Unreachable, ApiError) as e:
                unanswered_since = unanswered_since or time.monotonic()
                if time.monotonic() - unanswered_since > patience or (isinstance(e, ApiError) and e.status < 500):
                    raise
                if seen:
                    seen(operation, e)
        return operation

    def cancel(self, operation_id: str) -> None:
        self.request("POST", f"/v1/operations/{operation_id}/cancel", ok=(200, 202, 204))

    def control(self, operation_id: str, action: str) -> None:
        """POST /v1/operations/{id}/{action}: pause, resume or retry."""
        self.request("POST", f"/v1/operations/{operation_id}/{action}", ok=(200, 202, 204))

    def operations(self, statuses: list[str] | None = None, top: int | None = None,
                   token: str | None = None) -> tuple[list[dict], str | None]:
        """One page of the operations the service knows, newest first, optionally only those in `statuses`,
        and the next page's token (None on the last page; with no `top`, the one page holds them all)."""
        params = {"status": ",".join(statuses)} if statuses else {}
        if top:
            params["top"] = str(top)
        if token:
            params["continuationToken"] = token
        body = self.request("GET", "/v1/operations", params=params or None).json()
        return body.get("operations") or [], body.get("continuationToken") or None
