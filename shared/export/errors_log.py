"""`<operation id>/errors.log` in the destination: one JSON line per file that could not be exported.

Each line is `{"timestamp": ISO-8601 UTC, "identifier": "study[/series[/sop]]", "error": "..."}`.

The log is a block blob whose blocks are parts of the export: each batch writes its skip lines as the block
its place names (generation, batch), each listing its not-found lines as the block of where it started, and
committing it appends that block to the committed list (or replaces it where it is). So a batch run again,
by an activity retry, a crash replay or a retry in place of a failed export, replaces its own lines instead
of adding them again: each line is there once. The log is readable while the export runs: every write is
committed at once, in the order they ended. Batches commit concurrently, each on the ETag it read, and try
again when another got there first. One block blob commits at most 50 000 blocks, as the manifest.

A log made as an append blob (an export started before this version) is appended to as it was.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobBlock, BlockState, ContainerClient, ContentSettings

from shared.secrets import scrub

# An append block holds at most 4 MiB on every service version; stay well under it.
MAX_BLOCK_BYTES = 4 * 1024 * 1024 - 1024
_TEXT = ContentSettings(content_type="application/x-ndjson; charset=utf-8")
MAX_TRIES = 30  # commits lost to another batch's in a row before the write fails (and its activity is retried)
_LOST_RACE = {"ConditionNotMet", "InvalidBlockList"}  # another commit came first (and dropped our staged block)


@dataclass(frozen=True)
class ErrorEntry:
    identifier: str
    error: str

    def line(self, now: datetime | None = None) -> str:
        stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return json.dumps({"timestamp": stamp, "identifier": self.identifier, "error": scrub(self.error)[:2000]}) + "\n"


def blob_name(operation_id: str) -> str:
    return f"{operation_id}/errors.log"


def batch_key(generation: int, batch: int) -> str:
    """The part of the log that batch `batch` of generation `generation` writes."""
    return f"batch {generation} {batch}"


def listing_key(first: str, cursor: str | None) -> str:
    """The part of the log that the listing starting at identifier `first`, from `cursor`, writes."""
    return f"listing {first} {cursor or ''}"


def _block_id(key: str) -> str:
    """A block id of fixed length (a blob's block ids must all be as long) that names `key`."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class ErrorLog:
    """The error log of one operation in the destination container."""

    def __init__(self, container: ContainerClient, operation_id: str):
        self.blob = container.get_blob_client(blob_name(operation_id))

    def create(self) -> None:
        """Create the empty log, so the errorHref is valid before the first error.

        One that exists already (made by a concurrent retry with the same Idempotency-Key) keeps its lines.
        """
        try:
            self.blob.upload_blob(b"", blob_type="BlockBlob", content_settings=_TEXT, overwrite=False)
        except ResourceExistsError:
            pass

    def write(self, key: str, entries: list[ErrorEntry]) -> None:
        """The lines of `entries` as the part of the log `key` names (`batch_key`, `listing_key`): written again
        under the same key, they replace the earlier ones. Nothing to write leaves the log as it is."""
        data = b"".join(entry.line().encode() for entry in entries)
        if not data:
            return
        block = _block_id(key)
        for attempt in range(MAX_TRIES):
            try:
                self.blob.stage_block(block, data, length=len(data))
                etag = self.blob.get_blob_properties().etag
                committed = [b.id for b in self.blob.get_block_list("committed")[0]]
                ids = committed if block in committed else [*committed, block]
                blocks = [BlobBlock(i, BlockState.LATEST if i == block else BlockState.COMMITTED) for i in ids]
                self.blob.commit_block_list(blocks, content_settings=_TEXT, etag=etag,
                                            match_condition=MatchConditions.IfNotModified)
                return
            except HttpResponseError as error:
                code = getattr(error, "error_code", None)
                if code == "InvalidBlobType":  # an append blob: a log of an earlier version
                    self._append(data)
                    return
                if code not in _LOST_RACE or attempt == MAX_TRIES - 1:
                    raise
            time.sleep(random.uniform(0, 0.02 * 2 ** min(attempt, 5)))

    def _append(self, data: bytes) -> None:
        """Append `data` (whole lines) to an append blob in as few requests as its block size allows."""
        lines, block = data.splitlines(keepends=True), b""
        for line in lines:
            if block and len(block) + len(line) > MAX_BLOCK_BYTES:
                self.blob.append_block(block)
                block = b""
            block += line
        if block:
            self.blob.append_block(block)
