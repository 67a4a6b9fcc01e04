"""The export destination as the user gives it on the command line, and reading errors.log from it.

The service's errorHref (and manifestHref) is the blob's URL without any credential, so reading it needs the same
destination flags the export was started with (a SAS in the container URI, a connection string,
or managed identity); with none, the blob is read anonymously (a public container).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

_SECRET_PARTS = re.compile(r"(?i)(?:AccountKey|SharedAccessSignature)=([^;]+)")


@dataclass(frozen=True)
class Destination:
    container_uri: str | None = None
    connection_string: str | None = None
    container: str | None = None
    managed_identity: bool = False

    def export_settings(self) -> dict[str, str | bool | None]:
        """The `destination.settings` of an export request."""
        settings: dict[str, str | bool | None]
        if self.container_uri:
            settings = {"blobContainerUri": self.container_uri}
        else:
            settings = {"connectionString": self.connection_string, "blobContainerName": self.container}
        return {**settings, "useManagedIdentity": True} if self.managed_identity else settings

    def secrets(self) -> list[str]:
        """Everything here that must never be printed: whole values and the credential parts inside them."""
        found = []
        if self.connection_string:
            found += [self.connection_string, *_SECRET_PARTS.findall(self.connection_string)]
        query = urlsplit(self.container_uri).query if self.container_uri else ""
        if query:
            found += [query, *(part.split("=", 1)[-1] for part in query.split("&") if part.startswith("sig="))]
        return [s for s in found if s]

    def container_client(self, href: str, operation_id: str) -> ContainerClient:
        """The destination container, found from our flags or, without them, from a blob href of the operation."""
        # Slow to import, and only `errors` needs it.
        from azure.storage.blob import BlobServiceClient, ContainerClient

        if self.connection_string:
            service = BlobServiceClient.from_connection_string(self.connection_string)
            return service.get_container_client(self.container or _container_name(href, operation_id))
        if self.container_uri:
            credential = _managed_identity() if self.managed_identity else None
            return ContainerClient.from_container_url(self.container_uri, credential=credential)
        return ContainerClient.from_container_url(container_url(href, operation_id))


    def create_container(self) -> bool:
        """Create the container with these credentials; False when it exists already."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient, ContainerClient

        if self.connection_string:
            client = BlobServiceClient.from_connection_string(self.connection_string).get_container_client(
                self.container or "")
        else:
            credential = _managed_identity() if self.managed_identity else None
            client = ContainerClient.from_container_url(self.container_uri or "", credential=credential)
        try:
            client.create_container()
        except ResourceExistsError:
            return False
        return True


def _managed_identity():
    from azure.identity import DefaultAzureCredential  # only needed, and only imported, for this case

    return DefaultAzureCredential()


def container_url(href: str, operation_id: str) -> str:
    """'<container uri>/<id>/errors.log' (or another blob of the operation) -> '<container uri>'."""
    href = href.split("?", 1)[0]
    marker = f"/{operation_id}/"
    return href[: href.rindex(marker)] if marker in href else href.rsplit("/", 2)[0]


def _container_name(href: str, operation_id: str) -> str:
    return container_url(href, operation_id).rstrip("/").rsplit("/", 1)[-1]


def blob_lines(client: ContainerClient, name: str, seen: Callable[[bytes], None] | None = None) -> Iterator[bytes]:
    """The non-blank lines of blob `name`, streamed chunk by chunk (without their line ends); `seen` gets each chunk."""
    pending = b""
    for chunk in client.get_blob_client(name).download_blob().chunks():
        if seen:
            seen(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (line for line in lines if line.strip())
    if pending.strip():
        yield pending


def read_errors_log(client: ContainerClient, operation_id: str) -> Iterator[dict]:
    """The entries of `<id>/errors.log`, one dict per line."""
    return (parse_error_line(line) for line in blob_lines(client, f"{operation_id}/errors.log"))


def parse_error_line(line: bytes | str) -> dict:
    """{"timestamp", "identifier", "error"} from one JSON line, whatever the case of its keys."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    try:
        entry = json.loads(text)
    except ValueError:
        return {"timestamp": "", "identifier": "", "error": text.strip()}
    if not isinstance(entry, dict):
        return {"timestamp": "", "identifier": "", "error": text.strip()}
    lowered = {str(k).lower(): v for k, v in entry.items()}
    return {key: str(lowered.get(key, "")) for key in ("timestamp", "identifier", "error")}
