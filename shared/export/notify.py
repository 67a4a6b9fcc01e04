"""The completion notification: a signed POST of the export's final status to a URL the client chose.

A request may carry `"notification": {"url": "https://…", "secret": "…"}`. When the export ends (completed,
failed or canceled), the operation's final status, the JSON of GET /v1/operations/{id}, is POSTed to the URL
with two headers (docs/NOTIFICATIONS.md shows a receiver):

    X-Export-Timestamp: <Unix seconds, ASCII decimal>
    X-Export-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + body)>

Where a notification may go (server-side request forgery): https only, no user name or password in the URL,
and only to public addresses. Private, loopback and link-local addresses (and every other non-global one)
are refused unless `Export__Notification__AllowPrivateAddresses` is true. The name is resolved and checked
when the request is validated and again at each delivery, and the delivery connects to the very address it
checked (TLS still verifies the certificate against the URL's host name), so no DNS answer that changes in
between can redirect it. Redirects are not followed. Certificates are verified against the system's CAs plus
`Export__Notification__CaFile` (a PEM bundle, for a receiver behind a private CA).

The URL and the secret travel through the task hub encrypted together (shared/secrets.py), like destination
secrets; messages name the receiver's host only.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from shared import secrets, settings
from shared.errors import ClientError, Misconfigured
from shared.export.operation import durable_json
from shared.request_fields import named_fields

TIMESTAMP_HEADER = "X-Export-Timestamp"
SIGNATURE_HEADER = "X-Export-Signature"
URL = "notification.url"
SECRET = "notification.secret"
ALLOW_PRIVATE = "Export__Notification__AllowPrivateAddresses"
CA_FILE = "Export__Notification__CaFile"
MAX_ATTEMPTS = "Export__Notification__MaxAttempts"
FIRST_RETRY = "Export__Notification__FirstRetryIntervalSeconds"
BACKOFF = 3.0  # each wait between attempts is this many times the one before ...
LONGEST_WAIT = 900.0  # ... up to 15 minutes
MIN_SECRET, MAX_SECRET, MAX_URL = 16, 1024, 2048
TIMEOUT = 10.0  # seconds to connect, and to wait for each read of the answer

type Resolver = Callable[..., list[tuple[Any, ...]]]  # socket.getaddrinfo's shape


class DeliveryFailed(Exception):
    """One delivery attempt did not get a 2xx answer; the message says why (no URL path, no secret)."""


class AddressRefused(DeliveryFailed):
    """The receiver's host resolves to an address policy refuses."""


@dataclass(frozen=True)
class Notification:
    """Where to POST the final status, and the secret that signs it (hidden from repr)."""

    url: str
    secret: str = field(repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def protected(self, env: Mapping[str, str] | None = None) -> str:
        """URL and secret encrypted together: the only form the task hub holds."""
        return secrets.protect(json.dumps({"url": self.url, "secret": self.secret}), env)

    @classmethod
    def from_protected(cls, token: str, env: Mapping[str, str] | None = None) -> Notification:
        data = json.loads(secrets.unprotect(token, env))
        return cls(data["url"], data["secret"])


@dataclass(frozen=True)
class NotificationPolicy:
    allow_private: bool = False
    ca_file: str | None = None
    max_attempts: int = 8
    first_retry_seconds: float = 10.0

    @classmethod
    def from_settings(cls, env: Mapping[str, str] | None = None) -> NotificationPolicy:
        found = cls(allow_private=settings.get_bool(ALLOW_PRIVATE, cls.allow_private, env),
                    ca_file=(settings.get(CA_FILE, None, env) or "").strip() or None,
                    max_attempts=settings.get_int(MAX_ATTEMPTS, cls.max_attempts, env),
                    first_retry_seconds=settings.get_float(FIRST_RETRY, cls.first_retry_seconds, env))
        if found.max_attempts < 1:
            raise Misconfigured(f"setting {MAX_ATTEMPTS} must be at least 1, not {found.max_attempts}")
        if found.first_retry_seconds <= 0:
            raise Misconfigured(f"setting {FIRST_RETRY} must be above 0")
        return found

    def waits(self) -> list[float]:
        """Seconds to wait before each attempt after the first: 10, 30, 90, … at most 900 (defaults: ~50 min)."""
        return [min(self.first_retry_seconds * BACKOFF ** n, LONGEST_WAIT) for n in range(self.max_attempts - 1)]


def parse_notification(value: Any, policy: NotificationPolicy, resolve: Resolver = socket.getaddrinfo
                       ) -> Notification | None:
    """The request's `notification`, checked (its host resolved); ClientError naming the field at fault."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ClientError(400, "notification must be an object with url and secret", "notification")
    fields = named_fields(value, "notification", ("url", "secret"))
    url, secret = fields.get("url"), fields.get("secret")
    if not isinstance(url, str) or not url.strip():
        raise ClientError(400, f"{URL} is required: the https URL the final status is POSTed to", URL)
    if not isinstance(secret, str) or not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise ClientError(400, f"{SECRET} is required: a string of {MIN_SECRET} to {MAX_SECRET} characters "
                               "that signs each notification", SECRET)
    notification = Notification(url.strip(), secret)
    try:
        check_url(notification.url, policy, resolve)
    except DeliveryFailed as refused:
        raise ClientError(400, f"{URL}: {refused}", URL) from None
    return notification


def check_url(url: str, policy: NotificationPolicy, resolve: Resolver = socket.getaddrinfo) -> list[str]:
    """The addresses `url`'s host resolves to, all allowed by policy; DeliveryFailed saying why not."""
    if len(url) > MAX_URL:
        raise DeliveryFailed(f"the URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise DeliveryFailed("not a valid URL") from None
    if parts.scheme.lower() != "https":
        raise DeliveryFailed(f"must be an https URL, not {parts.scheme or 'one without a scheme'}")
    if not parts.hostname:
        raise DeliveryFailed("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise DeliveryFailed("the URL must not carry a user name or password (the secret signs instead)")
    return addresses(parts.hostname, port, policy, resolve)


def addresses(host: str, port: int, policy: NotificationPolicy, resolve: Resolver = socket.getaddrinfo
              ) -> list[str]:
    """Every address `host` resolves to now; AddressRefused if any of them is one policy refuses."""
    try:
        found = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):  # gaierror; UnicodeError (a name IDNA cannot encode) is a ValueError
        raise DeliveryFailed(f"host {host[:100]} does not resolve") from None
    unique = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in found))
    if not unique:
        raise DeliveryFailed(f"host {host[:100]} does not resolve")
    if not policy.allow_private:
        for address in unique:
            why = refused(ipaddress.ip_address(address))
            if why:
                shown = host if host == address else f"{host} ({address})"
                raise AddressRefused(f"{shown} is {why}: notifications go to public addresses only "
                                     f"(setting {ALLOW_PRIVATE})")
    return unique


def refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a notification may not go to `address` by default, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for test, why in ((address.is_loopback, "a loopback address"), (address.is_link_local, "a link-local address"),
                      (address.is_private, "a private address"), (not address.is_global, "not a public address")):
        if test:
            return why
    return None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the timestamp then the body."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode("ascii") + body, hashlib.sha256).hexdigest()


def deliver(notification: Notification, body: bytes, policy: NotificationPolicy,
            resolve: Resolver = socket.getaddrinfo, now: Callable[[], float] = time.time) -> None:
    """POST `body` (JSON) to the notification's URL, signed; DeliveryFailed unless the receiver answers 2xx.

    The host is resolved and checked again here, and the connection goes to an address that was checked.
    """
    parts = urlsplit(notification.url)
    host = parts.hostname or ""
    port = parts.port or 443
    checked = check_url(notification.url, policy, resolve)
    timestamp = str(int(now()))
    headers = {"Content-Type": "application/json", "User-Agent": "dicom-export-notification/1",
               TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(notification.secret, timestamp, body)}
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    context = tls_context(policy)
    problem = "no address answered"
    for address in checked:
        connection = _PinnedHTTPSConnection(host, port, address, context)
        try:
            try:
                connection.connect()
            except OSError as error:  # not reached, or the certificate refused: the next address may do
                problem = _why(error)
                continue
            try:
                connection.request("POST", target, body, headers)
                response = connection.getresponse()
                response.read(65536)
            except (OSError, http.client.HTTPException) as error:
                raise DeliveryFailed(f"{host}: {_why(error)}") from None
        finally:
            connection.close()
        if 200 <= response.status < 300:
            return
        raise DeliveryFailed(f"{host} answered {response.status} {secrets.scrub(response.reason)[:100]}".rstrip())
    raise DeliveryFailed(f"{host}: {problem}")


def tls_context(policy: NotificationPolicy) -> ssl.SSLContext:
    """The system's trusted CAs (SSL_CERT_FILE is honoured, as by any OpenSSL client), plus `CA_FILE`."""
    context = ssl.create_default_context()
    if policy.ca_file:
        try:
            context.load_verify_locations(cafile=policy.ca_file)
        except (OSError, ssl.SSLError) as error:
            raise Misconfigured(f"setting {CA_FILE}: cannot load {policy.ca_file} as PEM certificates "
                                f"({getattr(error, 'strerror', None) or error})") from None
    return context


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `host` (Host header, SNI, certificate check) over a TCP connection to `address`, already checked."""

    def __init__(self, host: str, port: int, address: str, context: ssl.SSLContext):
        super().__init__(host, port, timeout=TIMEOUT, context=context)
        self._address, self._tls = address, context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        try:
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


def _why(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"its certificate is not trusted ({error.verify_message}; setting {CA_FILE})"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"no answer within {TIMEOUT:g} s"
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return secrets.scrub(text)[:300]


def outcome(notifier: Mapping[str, Any] | None) -> dict[str, Any]:
    """The operation view's `notification` member, from the notifier's durable status (None: not started)."""
    if not notifier:
        return {"status": "pending", "attempts": 0}
    ended = notifier.get("runtimeStatus") in ("Completed", "Failed", "Terminated")
    found = durable_json(notifier.get("output") if ended else notifier.get("customStatus"))
    if not isinstance(found, dict) or "status" not in found:
        found = {"status": "failed" if ended else "pending", "attempts": 0}
    return {k: secrets.scrub(v) if isinstance(v, str) else v for k, v in found.items()}

