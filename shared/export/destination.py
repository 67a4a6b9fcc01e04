"""Where an export writes: an Azure Blob container, parsed, checked against policy, and opened.

A destination is given either as a connection string plus container name, or as a container URI,
optionally with managed identity. Both become one `Destination`: the account endpoint, the
container, and at most one credential. Policy (see shared/export/settings.py):

- Only Azure Storage blob endpoints (`*.blob.core.windows.net` and the sovereign clouds, or
  `Export__AllowedHostSuffixes`) over https, or the local emulator on a loopback address when
  `Export__AllowEmulator` is on. Tokens and SAS tokens are therefore never sent anywhere else.
- Account keys only for the emulator (`UseDevelopmentStorage=true` / account `devstoreaccount1`).
- SAS tokens unless `Export__AllowSasTokens` is false; no credential at all only with
  `Export__AllowPublicAccess`.

Messages never quote a connection string or a SAS token.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import ContainerClient

from shared import secrets
from shared.errors import ClientError, CopyFailed
from shared.export.settings import ExportSettings
from shared.secrets import first_line

EMULATOR_ACCOUNT = "devstoreaccount1"
# The emulator's well-known development key, published by Microsoft: not a secret.
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
EMULATOR_ENDPOINT = f"http://127.0.0.1:10000/{EMULATOR_ACCOUNT}"

SETTINGS = "destination.settings"
CONNECTION_STRING = f"{SETTINGS}.connectionString"
CONTAINER_NAME = f"{SETTINGS}.blobContainerName"
CONTAINER_URI = f"{SETTINGS}.blobContainerUri"
MANAGED_IDENTITY = f"{SETTINGS}.useManagedIdentity"

_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


class DestinationRefused(ClientError):
    """This destination cannot be used (400); the message says why, `field` names the setting at fault."""

    def __init__(self, message: str, field: str = SETTINGS):
        super().__init__(400, message, field)


@dataclass(frozen=True)
class Destination:
    """A blob container and the one credential used to write to it (secrets hidden from repr)."""

    account_url: str
    container: str
    account: str
    sas: str | None = field(default=None, repr=False)
    account_key: str | None = field(default=None, repr=False)
    use_managed_identity: bool = False

    @property
    def container_url(self) -> str:
        """The container's URI, without any credential: safe to show."""
        return f"{self.account_url}/{self.container}"

    def describe(self) -> str:
        return f"container '{self.container}' in storage account '{self.account}'"

    def container_client(self, env: Mapping[str, str] | None = None, **options: Any) -> ContainerClient:
        """A client authenticated the way the request asked; `options` tune transfer and retries."""
        credential: Any = None
        if self.use_managed_identity:
            from shared.credentials import managed_identity_credential

            credential = managed_identity_credential(env)
        elif self.account_key:
            credential = {"account_name": self.account, "account_key": self.account_key}
        elif self.sas:
            credential = self.sas
        return ContainerClient(self.account_url, self.container, credential=credential, **options)

    def protected(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A JSON form safe for the task hub: the SAS token or account key encrypted (shared/secrets.py)."""
        secret = {k: v for k, v in (("sas", self.sas), ("accountKey", self.account_key)) if v}
        return {
            "accountUrl": self.account_url,
            "container": self.container,
            "account": self.account,
            "useManagedIdentity": self.use_managed_identity,
            "secret": secrets.protect(json.dumps(secret), env) if secret else None,
        }

    @classmethod
    def from_protected(cls, data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Destination:
        secret = json.loads(secrets.unprotect(data["secret"], env)) if data.get("secret") else {}
        return cls(
            account_url=data["accountUrl"], container=data["container"], account=data["account"],
            sas=secret.get("sas"), account_key=secret.get("accountKey"),
            use_managed_identity=bool(data.get("useManagedIdentity")),
        )


def parse_destination(
    policy: ExportSettings,
    connection_string: str | None = None,
    container_name: str | None = None,
    container_uri: str | None = None,
    use_managed_identity: bool = False,
) -> Destination:
    """The destination the request's settings describe, if policy allows it; else DestinationRefused."""
    if connection_string and container_uri:
        raise DestinationRefused(
            f"{SETTINGS}: give either connectionString with blobContainerName, or blobContainerUri, not both",
            SETTINGS)
    if connection_string:
        if use_managed_identity:
            raise DestinationRefused(
                f"{MANAGED_IDENTITY} works with blobContainerUri only, not with a connection string",
                MANAGED_IDENTITY)
        if not container_name:
            raise DestinationRefused(f"{CONTAINER_NAME} is required with connectionString", CONTAINER_NAME)
        destination = _from_connection_string(connection_string, container_name, policy)
    elif container_uri:
        if container_name:
            raise DestinationRefused(
                f"{CONTAINER_NAME} goes with connectionString; blobContainerUri already names the container",
                CONTAINER_NAME)
        destination = _from_container_uri(container_uri, use_managed_identity, policy)
    else:
        raise DestinationRefused(
            f"{SETTINGS}: a destination needs connectionString with blobContainerName, or blobContainerUri",
            SETTINGS)
    _check_credential(destination, policy, CONNECTION_STRING if connection_string else CONTAINER_URI)
    return destination


def check_allowed(destination: Destination, policy: ExportSettings) -> None:
    """DestinationRefused unless `policy` allows writing to `destination`.

    The activities check again what the starter checked: an orchestration can also be started through the
    durable API, with any input, and no data or managed-identity token may go where policy does not allow.
    """
    url = urlsplit(destination.account_url)
    _check_endpoint(url, policy, SETTINGS)
    if destination.use_managed_identity and url.scheme != "https":
        raise DestinationRefused(f"{MANAGED_IDENTITY}: managed identity tokens are sent over https only",
                                 MANAGED_IDENTITY)
    _check_credential(destination, policy, SETTINGS)


def _from_connection_string(text: str, container: str, policy: ExportSettings) -> Destination:
    parts = _connection_string_parts(text)
    _check_container(container, CONTAINER_NAME)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        account_url, account, emulator = EMULATOR_ENDPOINT, EMULATOR_ACCOUNT, True
        _check_endpoint(urlsplit(account_url), policy, CONNECTION_STRING)
        key: str | None = parts.get("accountkey") or EMULATOR_KEY
    else:
        account = parts.get("accountname", "")
        endpoint = parts.get("blobendpoint")
        if not endpoint:
            if not account:
                raise DestinationRefused(f"{CONNECTION_STRING} has neither AccountName nor BlobEndpoint",
                                         CONNECTION_STRING)
            protocol = parts.get("defaultendpointsprotocol", "https").lower()
            suffix = parts.get("endpointsuffix", "core.windows.net")
            endpoint = f"{protocol}://{account}.blob.{suffix}"
        url = urlsplit(endpoint.rstrip("/"))
        emulator = _check_endpoint(url, policy, CONNECTION_STRING)
        path = [p for p in url.path.split("/") if p]
        if emulator:
            if len(path) != 1:
                raise DestinationRefused(f"{CONNECTION_STRING}: the emulator's BlobEndpoint must end with the account name",
                                         CONNECTION_STRING)
            account = account or path[0]
        elif path:
            raise DestinationRefused(f"{CONNECTION_STRING}: BlobEndpoint must not have a path", CONNECTION_STRING)
        else:
            account = account or (url.hostname or "").split(".")[0]
        account_url = f"{url.scheme}://{url.netloc}" + (f"/{path[0]}" if emulator else "")
        key = parts.get("accountkey")
    sas = parts.get("sharedaccesssignature")
    if key:
        if not (emulator and account == EMULATOR_ACCOUNT):
            raise DestinationRefused(
                f"{CONNECTION_STRING}: an AccountKey is accepted only for the local storage emulator: use a SAS token "
                "(SharedAccessSignature=...) or managed identity", CONNECTION_STRING)
        if sas:
            raise DestinationRefused(f"{CONNECTION_STRING}: give AccountKey or SharedAccessSignature, not both",
                                     CONNECTION_STRING)
        try:
            base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise DestinationRefused(f"{CONNECTION_STRING}: AccountKey is not base64", CONNECTION_STRING) from None
    if sas:
        sas = _sas_token(sas.lstrip("?"), CONNECTION_STRING)
    return Destination(account_url, container, account, sas=sas, account_key=key)


def _from_container_uri(text: str, use_managed_identity: bool, policy: ExportSettings) -> Destination:
    try:
        url = urlsplit(text.strip())
    except ValueError:
        raise DestinationRefused(f"{CONTAINER_URI} is not a valid URI", CONTAINER_URI) from None
    if url.fragment:
        raise DestinationRefused(f"{CONTAINER_URI} must not have a fragment (#...)", CONTAINER_URI)
    emulator = _check_endpoint(url, policy, CONTAINER_URI)
    path = [p for p in url.path.split("/") if p]
    expected = 2 if emulator else 1
    if len(path) != expected:
        shape = "http://127.0.0.1:10000/<account>/<container>" if emulator else \
            "https://<account>.blob.core.windows.net/<container>"
        raise DestinationRefused(f"{CONTAINER_URI} must have the form {shape}", CONTAINER_URI)
    _check_container(path[-1], CONTAINER_URI)
    account = path[0] if emulator else (url.hostname or "").split(".")[0]
    account_url = f"{url.scheme}://{url.netloc}" + (f"/{path[0]}" if emulator else "")
    sas = _sas_token(url.query, CONTAINER_URI) if url.query else None
    if use_managed_identity:
        if sas:
            raise DestinationRefused(
                f"{MANAGED_IDENTITY} cannot be combined with a SAS token in blobContainerUri", MANAGED_IDENTITY)
        if url.scheme != "https":
            raise DestinationRefused(f"{MANAGED_IDENTITY}: managed identity tokens are sent over https only",
                                     MANAGED_IDENTITY)
    return Destination(account_url, path[-1], account, sas=sas, use_managed_identity=use_managed_identity)


def _connection_string_parts(text: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for number, segment in enumerate((s.strip() for s in text.split(";")), start=1):
        if not segment:
            continue
        key, sep, value = segment.partition("=")
        if not sep or not key.strip():
            raise DestinationRefused(
                f"{CONNECTION_STRING} is not a storage connection string: part {number} is not Key=Value",
                CONNECTION_STRING)
        parts[key.strip().lower()] = value.strip()
    if not parts:
        raise DestinationRefused(f"{CONNECTION_STRING} is empty", CONNECTION_STRING)
    return parts


def _check_endpoint(url, policy: ExportSettings, field_name: str) -> bool:
    """Whether `url` is the emulator; DestinationRefused unless it is an allowed blob endpoint."""
    host = (url.hostname or "").lower()
    if not host or url.scheme not in ("http", "https"):
        raise DestinationRefused(f"{field_name} must be an http(s) URI with a host", field_name)
    if url.username is not None or url.password is not None:
        raise DestinationRefused(f"{field_name} must not carry a user name or password", field_name)
    if _is_loopback(host):
        _port(url, field_name)
        if not policy.allow_emulator:
            raise DestinationRefused(
                f"{field_name} points at a local storage emulator, which this server does not allow "
                "(setting Export__AllowEmulator)", field_name)
        return True
    if url.scheme != "https":
        raise DestinationRefused(f"{field_name} must use https", field_name)
    if not any(host.endswith("." + suffix) for suffix in policy.allowed_host_suffixes):
        raise DestinationRefused(
            f"{field_name} host '{host}' is not an Azure Storage blob endpoint "
            f"(allowed: *.{', *.'.join(policy.allowed_host_suffixes)})", field_name)
    if _port(url, field_name) not in (None, 443):
        raise DestinationRefused(f"{field_name} must use the https port 443", field_name)
    return False


def _port(url, field_name: str) -> int | None:
    try:
        return url.port
    except ValueError:
        raise DestinationRefused(f"{field_name} has an invalid port", field_name) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_container(name: str, field_name: str) -> None:
    if not _CONTAINER.fullmatch(name):
        raise DestinationRefused(
            f"{field_name}: container name {name[:80]!r} is not valid in Azure: 3 to 63 lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit", field_name)


def _sas_token(query: str, field_name: str) -> str:
    try:
        fields = parse_qs(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        fields = {}
    if "sig" not in fields:
        raise DestinationRefused(
            f"{field_name} has a query string that is not a SAS token (no signature)", field_name)
    return query


def _check_credential(destination: Destination, policy: ExportSettings, field_name: str) -> None:
    if destination.sas and not policy.allow_sas_tokens:
        raise DestinationRefused(
            f"{field_name}: SAS tokens are not accepted by this server (setting Export__AllowSasTokens): "
            "use managed identity", field_name)
    has_credential = destination.sas or destination.account_key or destination.use_managed_identity
    if not has_credential and not policy.allow_public_access:
        raise DestinationRefused(
            f"{field_name} carries no credential: add a SAS token or set useManagedIdentity "
            "(anonymous access needs setting Export__AllowPublicAccess)", field_name)


def destination_problem(error: BaseException, destination: Destination) -> str:
    """Why writing to `destination` failed, in words, with any secret scrubbed."""
    where = destination.describe()
    if isinstance(error, ClientAuthenticationError) and error.response is None:  # raised by the credential
        return f"managed identity could not get a token for {where}: {first_line(error)}"
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return f"storage account '{destination.account}' is unreachable: {first_line(error)}"
    if isinstance(error, HttpResponseError):
        code = getattr(error, "error_code", None) or ""
        if code == "ContainerNotFound" or (isinstance(error, ResourceNotFoundError) and not code):
            return f"{where} does not exist"
        if error.status_code in (401, 403):
            return (f"{where} refused access ({code or error.status_code}): check the SAS token's permissions "
                    "and expiry, or the identity's Storage Blob Data Contributor role")
        return f"{where} answered {error.status_code} {code}: {first_line(error)}".rstrip()
    if isinstance(error, AzureError):
        return f"{where}: {first_line(error)}"
    return f"{where}: {type(error).__name__}: {first_line(error)}"


@contextmanager
def destination_faults(destination: Destination) -> Iterator[None]:
    """Within the block, a fault of `destination` (an Azure SDK error) fails the batch: CopyFailed saying why."""
    try:
        yield
    except AzureError as error:
        raise CopyFailed(destination_problem(error, destination)) from None
