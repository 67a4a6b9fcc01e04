"""The DICOM store: one blob per instance at `<study>/<series>/<sop instance>.dcm`.

Listing by prefix is the store's only index: it expands an identifier into instances, page by
page, with an opaque cursor so a huge study never has to be listed at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from . import settings
from .uids import Identifier, is_uid

DEFAULT_CONTAINER = "dicomweb"


@dataclass(frozen=True)
class StoredInstance:
    """One instance as the listing saw it; `etag` pins the version an export will read."""

    study: str
    series: str
    instance: str
    size: int
    etag: str

    @property
    def blob_name(self) -> str:
        return blob_name(self.study, self.series, self.instance)

    @property
    def identifier(self) -> Identifier:
        return Identifier(self.study, self.series, self.instance)


def blob_name(study: str, series: str, instance: str) -> str:
    """The blob of one instance; refuses anything that is not three valid UIDs."""
    for uid in (study, series, instance):
        if not is_uid(uid):
            raise ValueError(f"not a valid UID: {uid!r}")
    return f"{study}/{series}/{instance}.dcm"


def parse_blob_name(name: str) -> tuple[str, str, str] | None:
    """(study, series, instance) of a store blob name, or None for a blob outside the layout."""
    parts = name.split("/")
    if len(parts) != 3 or not parts[2].endswith(".dcm"):
        return None
    study, series, instance = parts[0], parts[1], parts[2][: -len(".dcm")]
    return (study, series, instance) if all(map(is_uid, (study, series, instance))) else None


class DicomStore:
    """The store's container, with the few operations STOW, WADO, DELETE and export need."""

    def __init__(self, container: ContainerClient):
        self.container = container
        self._created = False

    @classmethod
    def from_settings(cls, env: Mapping[str, str] | None = None) -> "DicomStore":
        """The store named by `DicomStore__*` settings (connection string, or service URI with managed identity)."""
        name = settings.get("DicomStore__ContainerName", DEFAULT_CONTAINER, env) or DEFAULT_CONTAINER
        service_uri = settings.get("DicomStore__ServiceUri", None, env)
        if service_uri:
            from .credentials import managed_identity_credential

            container = ContainerClient(
                account_url=service_uri, container_name=name,
                credential=managed_identity_credential(env),
            )
        else:
            conn = settings.get("DicomStore__ConnectionString", None, env) or settings.get(
                "AzureWebJobsStorage", None, env
            )
            if not conn:
                raise RuntimeError("no store configured: set DicomStore__ConnectionString or AzureWebJobsStorage")
            container = ContainerClient.from_connection_string(conn, name)
        return cls(container)

    def ensure_container(self) -> None:
        """Create the container on first use (idempotent)."""
        if not self._created:
            try:
                self.container.create_container()
            except ResourceExistsError:
                pass
            self._created = True

    def list_page(
        self, identifier: Identifier, cursor: str | None = None, page_size: int = 1000
    ) -> tuple[list[StoredInstance], str | None]:
        """Up to `page_size` instances under `identifier`, and the cursor of the next page (None at the end)."""
        pages = self.container.list_blobs(
            name_starts_with=identifier.blob_prefix, results_per_page=page_size
        ).by_page(continuation_token=cursor)
        try:
            page = next(pages)
        except StopIteration:
            return [], None
        found = []
        for blob in page:
            parsed = parse_blob_name(blob.name)
            if parsed:
                found.append(StoredInstance(*parsed, size=blob.size, etag=blob.etag))
        return found, pages.continuation_token or None

    def iter_instances(self, identifier: Identifier, page_size: int = 1000) -> Iterator[StoredInstance]:
        """Every instance under `identifier`, page by page."""
        cursor: str | None = None
        while True:
            found, cursor = self.list_page(identifier, cursor, page_size)
            yield from found
            if not cursor:
                return
