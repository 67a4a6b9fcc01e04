"""The DICOM store: one blob per instance at `<study>/<series>/<sop instance>.dcm`.

Listing by prefix is the store's only index: it expands an identifier into instances, page by
page, with an opaque cursor so a huge study never has to be listed at once.

Uploads and downloads move one block at a time (`BLOCK_SIZE`), so an instance of any size costs the
process a few MiB on top of wherever its bytes already live.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import (
    BlobSasPermissions,
    ContainerClient,
    StorageStreamDownloader,
    generate_blob_sas,
)

from shared import settings
from shared.connection_pool import shared_pool
from shared.errors import Misconfigured
from shared.query import Query
from shared.stores.blob import search
from shared.stores.interface import (
    InstanceChangedOrGone,
    SearchPage,
    Store,
    StoredInstance,
    StudyRange,
    blob_name,
    parse_blob_name,
)
from shared.transfer import DICOM_CONTENT, TRANSFER_SIZES
from shared.uids import Identifier

DEFAULT_CONTAINER = "dicomweb"
DELETE_BATCH = 256  # the most one blob batch request may hold


def host_blob_service_uri(env: Mapping[str, str] | None = None) -> str | None:
    """The blob endpoint of the host's identity-based storage connection, as the Functions host derives it:
    `AzureWebJobsStorage__blobServiceUri`, else the public-cloud endpoint of `AzureWebJobsStorage__accountName`."""
    uri = (settings.get("AzureWebJobsStorage__blobServiceUri", None, env) or "").strip()
    if uri:
        return uri
    account = (settings.get("AzureWebJobsStorage__accountName", None, env) or "").strip()
    return f"https://{account}.blob.core.windows.net" if account else None


class DicomStore(Store):
    """The store's container, with the few operations STOW, WADO, DELETE and export need."""

    def __init__(self, container: ContainerClient):
        self.container = container
        self._created = False

    @classmethod
    def from_settings(cls, env: Mapping[str, str] | None = None, **options: Any) -> DicomStore:
        """The store named by `DicomStore__*` settings (connection string, or service URI with managed identity),
        else in the host's storage (`AzureWebJobsStorage`: a connection string, or the identity-based
        `AzureWebJobsStorage__blobServiceUri` / `__accountName`); `options` go to the blob client."""
        name = settings.get("DicomStore__ContainerName", DEFAULT_CONTAINER, env) or DEFAULT_CONTAINER
        client_options = {**shared_pool(), **TRANSFER_SIZES, **options}
        service_uri = settings.get("DicomStore__ServiceUri", None, env)
        if service_uri:
            from shared import credentials

            return cls(ContainerClient(account_url=service_uri, container_name=name,
                                       credential=credentials.managed_identity_credential(env), **client_options))
        conn = settings.get("DicomStore__ConnectionString", None, env) or settings.get("AzureWebJobsStorage", None, env)
        if conn:
            return cls(ContainerClient.from_connection_string(conn, name, **client_options))
        host_uri = host_blob_service_uri(env)
        if host_uri:
            from shared import credentials

            return cls(ContainerClient(account_url=host_uri, container_name=name,
                                       credential=credentials.host_storage_credential(env), **client_options))
        raise Misconfigured("no blob store configured: set DicomStore__ConnectionString or AzureWebJobsStorage "
                                 "(a connection string, or AzureWebJobsStorage__blobServiceUri with managed identity)")

    def ensure_container(self) -> None:
        """Create the container on first use (idempotent)."""
        if not self._created:
            try:
                self.container.create_container()
            except ResourceExistsError:
                pass
            self._created = True

    def list_page(
        self, identifier: Identifier | None, cursor: str | None = None, page_size: int = 1000
    ) -> tuple[list[StoredInstance], str | None]:
        """Up to `page_size` instances under `identifier` (None: the whole container), and the cursor of the next
        page (None at the end).

        Names only: turning each listed blob into the SDK's full model costs about ten times the CPU of reading
        its name (232 against 24 ms per 1 000 blobs, bench/listing.py), and an export needs no more; its read pins the version it first reads
        (`download`). An instance identifier names one blob, so its properties are read instead of listing a
        prefix: a point read, where a listing costs a scan and an XML page.
        """
        if identifier and identifier.instance:
            return self._properties(identifier), None
        names, cursor = self._names(identifier.blob_prefix if identifier else None, cursor, page_size)
        return [StoredInstance(*parsed, size=None, etag=None) for parsed in map(parse_blob_name, names) if parsed], cursor

    def list_range(self, studies: StudyRange, cursor: str | None,
                   page_size: int) -> tuple[list[StoredInstance], str | None]:
        """The names under the range's common prefix, in name order, until one passes the range's end: a blob
        listing cannot start at a key, so a lane reads the names before its range (those under the prefix) too."""
        names, cursor = self._names(studies.prefix or None, cursor, page_size)
        found: list[StoredInstance] = []
        for parsed in filter(None, map(parse_blob_name, names)):
            place = studies.place(parsed[0])
            if place > 0:  # listed past the range: the rest of the store is other lanes'
                return found, None
            if place == 0:
                found.append(StoredInstance(*parsed, size=None, etag=None))
        return found, cursor

    def _names(self, prefix: str | None, cursor: str | None, page_size: int) -> tuple[list[str], str | None]:
        """One page of blob names under `prefix` from `cursor`, and the next page's cursor."""
        pages: Any = self.container.list_blob_names(  # a PageIterator: it carries the continuation token
            name_starts_with=prefix, results_per_page=page_size).by_page(continuation_token=cursor)
        try:
            page = list(next(pages))
        except (StopIteration, ResourceNotFoundError):  # nothing, or no container yet: nothing was ever stored
            return [], None
        return page, pages.continuation_token or None

    def search_page(self, query: Query, cursor: str | None, page_size: int,
                    include: tuple[str, ...] = ()) -> SearchPage:
        """What `query` selects, read from the instances' headers (shared/stores/blob/search.py)."""
        return search.search_page(self.container, query, cursor, page_size, include)

    def _properties(self, identifier: Identifier) -> list[StoredInstance]:
        assert identifier.series and identifier.instance, "an instance identifier names one blob"
        try:
            found = self.container.get_blob_client(identifier.blob_prefix).get_blob_properties()
        except ResourceNotFoundError:  # no such instance, or no container yet
            return []
        # The listing's form of the ETag (unquoted), so both travel and compare alike.
        return [StoredInstance(identifier.study, identifier.series, identifier.instance, size=found.size,
                               etag=found.etag.strip('"'))]

    def iter_instances(self, identifier: Identifier, page_size: int = 1000) -> Iterator[StoredInstance]:
        """Every instance under `identifier`, page by page."""
        cursor: str | None = None
        while True:
            found, cursor = self.list_page(identifier, cursor, page_size)
            yield from found
            if not cursor:
                return

    def put(self, study: str, series: str, instance: str, data: IO[bytes], length: int,
            metadata: dict[str, str] | None = None) -> StoredInstance:
        """Store `length` bytes read from `data` as the instance, unchanged, replacing any earlier version, with
        `metadata` (its index entry, shared/stores/blob/index.py) in the same request.

        Reads one block at a time (up to `SINGLE_PUT_SIZE` for a small instance), never the whole stream.
        """
        name = blob_name(study, series, instance)
        self.ensure_container()
        result = self.container.get_blob_client(name).upload_blob(
            data, length=length, overwrite=True, content_settings=DICOM_CONTENT, max_concurrency=1,
            metadata=metadata or None,
        )
        return StoredInstance(study, series, instance, size=length, etag=result["etag"])

    def exists(self, study: str, series: str, instance: str) -> bool:
        try:
            return self.container.get_blob_client(blob_name(study, series, instance)).exists()
        except ResourceNotFoundError:  # no container yet
            return False

    def download(self, name: str, etag: str | None = None) -> Download:
        """Open the blob `name` for reading, pinned to `etag` when given, else to the version it first reads.

        Raises InstanceChangedOrGone when the blob is absent or (with `etag`) has been replaced since; later
        chunks stay pinned to the version the first one came from (the SDK sends its ETag as If-Match), so a
        blob replaced while it is read fails rather than mixing two versions.
        """
        if parse_blob_name(name) is None:
            raise ValueError(f"not a store blob name: {name!r}")
        conditions: dict[str, Any] = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        try:
            return Download(name, self.container.download_blob(name, max_concurrency=1, **conditions))
        except (ResourceNotFoundError, ResourceModifiedError) as error:
            raise _changed_or_gone(name, etag, error) from None

    def open(self, instance: StoredInstance) -> Download:
        return self.download(instance.blob_name, etag=instance.etag)

    def read_url(self, instance: StoredInstance, valid_for: timedelta) -> str | None:
        """A read-only SAS URL of the blob, or None when the store is not reached with an account key."""
        key = getattr(self.container.credential, "account_key", None)
        if not key:
            return None
        sas = generate_blob_sas(
            account_name=self.container.credential.account_name, container_name=self.container.container_name,
            blob_name=instance.blob_name, account_key=key, permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + valid_for,
        )
        return f"{self.container.get_blob_client(instance.blob_name).url}?{sas}"

    def delete(self, identifier: Identifier, page_size: int = 1000) -> int:
        """Delete every instance under `identifier`, a listing page at a time; the number deleted."""
        deleted, cursor = 0, None
        with ThreadPoolExecutor(max_workers=4) as pool:
            while True:
                found, cursor = self.list_page(identifier, cursor, page_size)
                names = [instance.blob_name for instance in found]
                batches = [names[i: i + DELETE_BATCH] for i in range(0, len(names), DELETE_BATCH)]
                deleted += sum(pool.map(self._delete_batch, batches))
                if not cursor:
                    return deleted

    def _delete_batch(self, names: list[str]) -> int:
        """Delete up to DELETE_BATCH blobs in one request; blobs already gone are not counted."""
        responses = self.container.delete_blobs(*names, raise_on_any_failure=False)
        return sum(1 for response in responses if response.status_code == 202)


@dataclass
class Download:
    """One instance being read from the store, a block at a time."""

    name: str
    _downloader: StorageStreamDownloader

    @property
    def size(self) -> int:
        return self._downloader.size

    @property
    def etag(self) -> str:
        return self._downloader.properties.etag

    def chunks(self) -> Iterator[bytes]:
        """The bytes, a block at a time."""
        try:
            yield from self._downloader.chunks()
        except (ResourceNotFoundError, ResourceModifiedError) as error:
            raise _changed_or_gone(self.name, self.etag, error) from None

    def readinto(self, stream: IO[bytes]) -> int:
        """Write the bytes to `stream`; the number written."""
        written = 0
        for chunk in self.chunks():
            stream.write(chunk)
            written += len(chunk)
        return written


def _changed_or_gone(name: str, etag: str | None, error: Exception) -> InstanceChangedOrGone:
    if etag or isinstance(error, ResourceModifiedError):
        return InstanceChangedOrGone(f"instance {name} changed or was deleted since it was listed")
    return InstanceChangedOrGone(f"instance {name} is not in the store")
