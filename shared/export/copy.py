"""Copy one batch of stored instances to `<operation id>/results/<study>/<series>/<sop>.dcm`.

Each file is read as the store holds it when its batch runs, pinned to the version its first bytes came
from (or to the ETag its identifier's point read saw), so an instance deleted during the export is skipped
and one replaced while it is read is skipped rather than half-copied; each is written with overwrite, so a
retried batch simply rewrites what it wrote before. Every file is hashed as it is written (shared/export/upload.py):
its blob gets its Content-MD5, and the batch returns its manifest lines (shared/export/manifest.py).
`fault_policy` alone decides what a failure means: a fault of one file is skipped and logged in
errors.log; a fault of the destination (container gone, credentials refused) or of the service
(unreachable) fails the batch, so the activity is retried and, when retries are spent, the
operation fails with the reason.

Copy modes (`Export__CopyMode`):
- `stream`: bytes flow store → function → destination a block (`BLOCK_SIZE`, 4 MiB) at a time;
  only a file up to `SINGLE_PUT_SIZE` is held whole, to send it in one request. Works everywhere.
- `server`: the destination service copies from a short-lived read SAS of the source (Copy Blob),
  so nothing is uploaded through the function (the copy is read back once, to hash it); any file
  the service refuses is streamed instead.
  Needs a store reached with an account key (connection string); otherwise it streams.
- `auto`: as `server`, but after the first refusal the rest of the batch is streamed without
  asking again (for services that never accept, such as Azurite across accounts).

A de-identified export (`deidentifier`) always streams: each file goes through
`shared.deid.stream.deidentify_file` on its way, lands at the path of its new UIDs, and a file that
cannot be de-identified safely is skipped and logged under its pseudonymized identifier. With
`linkage`, each instance, exported or skipped, also gives a row of the linkage table
(shared/export/linkage.py) in `CopyResult.links`, which never goes to the destination.

An export with an `output` (transcoded DICOM, PNG/JPEG frames) or a metadata table also streams: the
file (de-identified first, when asked) goes through `shared.outputs.produce`, which yields the files to
write, and each written file adds its manifest line and, with a metadata table, its row
(shared/outputs/metadata.py). An instance the output step declines is skipped and logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, ContainerClient, ContentSettings

from shared.deid.dataset import Deidentifier, NotDeidentified
from shared.deid.stream import DeidentifiedFile, deidentify_file
from shared.errors import CopyFailed
from shared.export import manifest
from shared.export.errors_log import ErrorEntry, ErrorLog
from shared.export.linkage import Link
from shared.export.upload import ContentMismatch, Digests, hash_blob, upload
from shared.outputs.instance import HeaderTap, spooled
from shared.outputs.metadata import row
from shared.outputs.produce import produce
from shared.outputs.spec import OutputSpec
from shared.outputs.types import NotProduced
from shared.secrets import first_line
from shared.stores.interface import InstanceChangedOrGone, Opened, Store, StoredInstance, blob_name
from shared.transfer import BLOCK_SIZE, DICOM_CONTENT, SINGLE_PUT_SIZE
from shared.uids import Identifier

# Destination transfers in the store's block sizes: a large file is never whole in memory.
TRANSFER_OPTIONS: dict[str, Any] = {"max_single_put_size": SINGLE_PUT_SIZE, "max_block_size": BLOCK_SIZE}
SERVER_COPY_TIMEOUT = timedelta(minutes=10)
# Error codes with which a service declines a server-side copy it could otherwise do: stream instead.
_COPY_REFUSALS = {
    "CannotVerifyCopySource", "FeatureNotSupported", "NotImplemented", "InvalidSourceBlobUrl",
    "InvalidSourceBlobType", "UnsupportedHeader", "InvalidHeaderValue", "InvalidQueryParameterValue",
}


class _SourceFault(Exception):
    """An error reading the store, tagged so `fault_policy` knows which side failed."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


class _CopyRefused(Exception):
    """The service declined a server-side copy of this file."""


@dataclass(frozen=True)
class CopyResult:
    lines: list[str]  # the manifest lines of the exported files, in the batch's order
    skipped: int
    exported: int  # instances (a rendered instance is several files)
    rows: list[dict[str, Any]] = field(default_factory=list)  # metadata rows, when the export asked for them
    links: list[Link] = field(default_factory=list)  # linkage rows, exported and skipped, when asked for


@dataclass(frozen=True)
class _Written:
    """What one exported instance wrote: a manifest line per file, and their metadata rows."""

    lines: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)


def result_path(operation_id: str, instance: StoredInstance | Identifier) -> str:
    name = instance.blob_name if isinstance(instance, StoredInstance) else blob_name(*instance.parts)
    return f"{operation_id}/results/{name}"


def store_problem(error: BaseException) -> str:
    """Why reading the DICOM store failed, in words, with any secret scrubbed."""
    return f"reading the DICOM store failed: {first_line(error)}"


def fault_policy(error: BaseException, side: str) -> str | None:
    """What errors.log should say when a file is skipped for `error`; None when the batch must fail.

    `side` is "source" (reading the store) or "destination". Only faults of one file are skipped:
    the instance vanished or changed since it was listed, or the store cannot serve that blob,
    or that one destination blob is locked. Anything else — destination missing or refusing
    credentials, throttling, outages — is not the file's fault and fails the batch.
    """
    status = getattr(error, "status_code", None)
    code = getattr(error, "error_code", None) or ""
    if side == "source":
        gone = (InstanceChangedOrGone, ResourceNotFoundError, ResourceModifiedError)
        if isinstance(error, gone) or status in (404, 410, 412):
            return "the instance was deleted or replaced in the store after the export listed it"
        if status in (400, 409, 416):
            return f"the instance could not be read from the store ({code or status})"
        return None
    if status in (409, 412) and code not in ("ContainerBeingDeleted", "ContainerDisabled"):
        return f"the destination blob could not be written ({code or status})"
    return None


class BatchCopier:
    """Copies batches from the store to one destination container."""

    def __init__(self, store: Store, destination: ContainerClient, operation_id: str,
                 describe_fault: Callable[[BaseException], str], mode: str = "stream", threads: int = 5,
                 deidentifier: Deidentifier | None = None, output: OutputSpec | None = None, linkage: bool = False):
        self.store = store
        self.destination = destination
        self.operation_id = operation_id
        self.describe_fault = describe_fault
        self.output = output or OutputSpec()
        # a de-identified or transformed file is new, and a metadata row needs the header: no server-side copy
        self.mode = "stream" if deidentifier or not self.output.plain else mode
        self.threads = threads
        self.deidentifier = deidentifier
        self.linkage = linkage and deidentifier is not None  # a linkage row per instance (shared/export/linkage.py)
        self._server_refused = threading.Event()

    def copy(self, instances: list[StoredInstance], log_key: str | None = None) -> CopyResult:
        """Copy `instances`, log the skipped ones as the part of errors.log `log_key` names (the batch's place;
        by default the instances themselves); CopyFailed when the batch cannot complete."""
        skipped: list[ErrorEntry] = []
        written: list[_Written] = []
        links: list[Link] = []
        with ThreadPoolExecutor(max_workers=max(1, min(self.threads, len(instances)))) as pool:
            futures = [pool.submit(self._copy_linked, instance) for instance in instances]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            for future in futures:
                if not future.cancelled():
                    copied, link = future.result()  # re-raises the first CopyFailed
                    if isinstance(copied, ErrorEntry):
                        skipped.append(copied)
                    else:
                        written.append(copied)
                    links += [link] if link else []
        if skipped:
            try:
                key = log_key or "instances " + " ".join(i.blob_name for i in instances)
                ErrorLog(self.destination, self.operation_id).write(key, skipped)
            except Exception as error:  # noqa: BLE001 - any failure to log is the destination's
                raise CopyFailed(self.describe_fault(error)) from None
        return CopyResult(lines=[line for w in written for line in w.lines], skipped=len(skipped),
                          exported=len(written), rows=[r for w in written for r in w.rows], links=links)

    def _copy_linked(self, instance: StoredInstance) -> tuple[_Written | ErrorEntry, Link | None]:
        """What `_copy_one` did, and the instance's linkage row when the export keeps a linkage table."""
        seen: dict[str, Any] = {}
        copied = self._copy_one(instance, seen)
        if not self.linkage or self.deidentifier is None:
            return copied, None
        file: DeidentifiedFile | None = seen.get("file")  # always there for an exported file: de-identified ones stream
        if isinstance(copied, ErrorEntry) or file is None:  # named as errors.log names it
            return copied, Link(instance.identifier, self.deidentifier.identifier(instance.identifier),
                                seen.get("patient") or (file.patient_id if file else ""),
                                file.pseudonym if file else "", getattr(copied, "error", ""))
        return copied, Link(file.original, file.identifier, file.patient_id, file.pseudonym)

    def _copy_one(self, instance: StoredInstance, seen: dict[str, Any]) -> _Written | ErrorEntry:
        """What the instance wrote, or why it was skipped; `seen` gets the de-identified file, for the linkage."""
        reason: str | None
        target = self.destination.get_blob_client(result_path(self.operation_id, instance))
        try:
            by_server = self._copied_by_server(instance, target)
            return _Written([by_server]) if by_server else self._stream(instance, target, seen)
        except NotDeidentified as refused:
            seen["patient"] = refused.patient_id
            reason = f"could not be de-identified: {refused}"
        except NotProduced as declined:
            reason = f"not written as {self.output.format}: {declined}"
        except _SourceFault as fault:
            reason = fault_policy(fault.error, "source")
            if reason is None:
                raise CopyFailed(store_problem(fault.error)) from None
        except Exception as error:  # noqa: BLE001 - fault_policy decides, re-raised if not skipped
            reason = fault_policy(error, "destination")
            if reason is None:
                raise CopyFailed(self.describe_fault(error)) from None
        shown = self.deidentifier.identifier(instance.identifier) if self.deidentifier else instance.identifier
        return ErrorEntry(str(shown), reason)

    def _copied_by_server(self, instance: StoredInstance, target: BlobClient) -> str | None:
        """The manifest line of a server-side copy, or None when the file is to be streamed (mode, or refused)."""
        if self.mode == "stream" or (self.mode == "auto" and self._server_refused.is_set()):
            return None
        try:
            return self._line(target, self._server_copy(instance, target))
        except _CopyRefused:
            self._server_refused.set()
            return None

    def _stream(self, instance: StoredInstance, target: BlobClient, seen: dict[str, Any]) -> _Written:
        """Stream the file (de-identified on the way when asked, to its new path, then through the output step)."""
        try:
            download = self.store.open(instance)
        except Exception as error:  # noqa: BLE001 - whatever the store raises is a source fault
            raise _SourceFault(error) from None
        chunks: Iterable[bytes] = _source_chunks(download)
        size = download.size  # None when the store does not say (a DICOMweb reply)
        if self.deidentifier is not None:  # its new length is unknown until the end; small goes in one request
            file = deidentify_file(chunks, self.deidentifier)
            seen["file"] = file
            target = self.destination.get_blob_client(result_path(self.operation_id, file.identifier))
            chunks, size = file.chunks, None
        if not self.output.as_stored:
            return self._produce(chunks)
        header = HeaderTap(chunks) if self.output.metadata_formats else None
        digests = upload(target, header or chunks, DICOM_CONTENT, size=size)
        line = self._line(target, digests)
        rows = [self._row(header.dataset(), target, digests)] if header else []
        return _Written([line], rows)

    def _produce(self, chunks: Iterable[bytes]) -> _Written:
        """The instance spooled and its header parsed once, then written as the output step's files, in blocks.

        An instance declined after some of its files were written (a frame of a rendered multi-frame that
        fails to decode) has them deleted: no file stays without its manifest line.
        """
        written, targets = _Written([]), []
        with spooled(chunks) as instance:
            try:
                for file in produce(self.output, instance, deidentified=self.deidentifier is not None):
                    targets.append(self.destination.get_blob_client(f"{self.operation_id}/results/{file.name}"))
                    digests = upload(targets[-1], file.chunks, ContentSettings(content_type=file.content_type))
                    written.lines.append(self._line(targets[-1], digests))
                    if self.output.metadata_formats:
                        written.rows.append(self._row(instance.header, targets[-1], digests, file.frame))
            except NotProduced:
                for target in targets:
                    target.delete_blob(delete_snapshots="include")
                raise
        return written

    def _row(self, ds: Any, target: BlobClient, digests: Digests, frame: int | None = None) -> dict[str, Any]:
        return row(ds, self.output.metadata_attributes, target.blob_name.removeprefix(f"{self.operation_id}/"),
                   digests, frame)

    def _line(self, target: BlobClient, digests: Digests) -> str:
        return manifest.line(digests.sha256, target.blob_name.removeprefix(f"{self.operation_id}/"))

    def _server_copy(self, instance: StoredInstance, target: BlobClient) -> Digests:
        """Copy Blob from a read SAS of the source, then hash the copy (the manifest needs its SHA-256).

        The copy carries the source's Content-MD5 when it has one, and `hash_blob` checks it; when it has
        none, the copy gets it from the hash. A copy whose content disagrees with its MD5 is streamed again.
        """
        source_url = self.store.read_url(instance, SERVER_COPY_TIMEOUT)
        if source_url is None:
            raise _CopyRefused()
        pinned: dict[str, Any] = {"source_etag": instance.etag,
                                  "source_match_condition": MatchConditions.IfNotModified} if instance.etag else {}
        try:
            started = target.start_copy_from_url(source_url, **pinned)
        except HttpResponseError as error:
            code = getattr(error, "error_code", None) or ""
            if error.status_code == 412 or code == "SourceConditionNotMet":
                raise _SourceFault(InstanceChangedOrGone(code)) from None
            if code in _COPY_REFUSALS or error.status_code == 501:
                raise _CopyRefused() from None
            raise
        status = started.get("copy_status")
        deadline = time.monotonic() + SERVER_COPY_TIMEOUT.total_seconds()
        pause = 0.05
        while status == "pending" and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
            status = target.get_blob_properties().copy.status
        if status != "success":
            if status == "pending":
                target.abort_copy(str(started["copy_id"]))
            raise _CopyRefused()
        try:
            return hash_blob(target)
        except ContentMismatch:
            raise _CopyRefused() from None


def _source_chunks(download: Opened) -> Iterator[bytes]:
    """The source's bytes a block at a time, its errors tagged as the source's."""
    try:
        yield from download.chunks()
    except Exception as error:  # noqa: BLE001 - tagged and re-raised
        raise _SourceFault(error) from None

