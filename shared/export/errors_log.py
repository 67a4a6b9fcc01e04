"""`<operation id>/errors.log` in the destination: one JSON line per file that could not be exported.

Each line is `{"timestamp": ISO-8601 UTC, "identifier": "study[/series[/sop]]", "error": "..."}`.
Lines are appended at least once: when an activity is retried after a fault, the lines it had
already appended for its batch are appended again, so an identifier may appear more than once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient, ContentSettings

from shared.secrets import scrub

# An append block holds at most 4 MiB on every service version; stay well under it.
MAX_BLOCK_BYTES = 4 * 1024 * 1024 - 1024
_TEXT = ContentSettings(content_type="application/x-ndjson; charset=utf-8")


@dataclass(frozen=True)
class ErrorEntry:
    identifier: str
    error: str

    def line(self, now: datetime | None = None) -> str:
        stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return json.dumps({"timestamp": stamp, "identifier": self.identifier, "error": scrub(self.error)[:2000]}) + "\n"


def blob_name(operation_id: str) -> str:
    return f"{operation_id}/errors.log"


class ErrorLog:
    """The error log of one operation in the destination container."""

    def __init__(self, container: ContainerClient, operation_id: str):
        self.blob = container.get_blob_client(blob_name(operation_id))

    def create(self) -> None:
        """Create the empty append blob, so the errorHref is valid before the first error.

        One that exists already (made by a concurrent retry with the same Idempotency-Key) keeps its lines.
        """
        try:
            self.blob.create_append_blob(content_settings=_TEXT, match_condition=MatchConditions.IfMissing)
        except ResourceExistsError:
            pass

    def append(self, entries: list[ErrorEntry]) -> None:
        """Append `entries` in as few requests as the service's block size allows."""
        block = b""
        for entry in entries:
            line = entry.line().encode()
            if block and len(block) + len(line) > MAX_BLOCK_BYTES:
                self.blob.append_block(block)
                block = b""
            block += line
        if block:
            self.blob.append_block(block)
