"""`<op>/linkage.csv` in the data controller's own container: each instance's original and new identifiers.

Research projects keep the link between original and pseudonymous identifiers with an honest broker,
never with the researchers: a de-identified export with `deidentification.linkage` writes this table
to that container only (its own credentials, protected like the destination's), and nothing of it
to the research destination. One row per instance the export reached, exported or skipped:

    status,reason,originalPatientID,originalStudyInstanceUID,originalSeriesInstanceUID,originalSOPInstanceUID,
    patientID,studyInstanceUID,seriesInstanceUID,sopInstanceUID

- exported: the UIDs and Patient ID read from the file, and those written (pseudonyms);
- skipped: the reason, the UIDs as the store listed them, and the pseudonymized UIDs that errors.log
  names in the research destination, so the controller can find which original file was skipped
  (the Patient ID when the file was read far enough to know it, else empty).

Staged like the manifest: each batch stages its rows as the block of its place in the export, so a
retried batch replaces its rows instead of adding them; the end of the export (also a failed or
canceled one, with the generations its manifest lists) commits the blocks in order after the header.
Cells are written by the csv module; a cell that a spreadsheet would run as a formula (= + - @) is
prefixed with a quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient, ContentSettings

from shared.errors import CopyFailed
from shared.export.destination import Destination, DestinationRefused, destination_problem
from shared.export.manifest import block_id, commit_blocks
from shared.uids import Identifier

FIELD = "deidentification.linkage"
NAME = "linkage.csv"
COLUMNS = ("status", "reason", "originalPatientID", "originalStudyInstanceUID", "originalSeriesInstanceUID",
           "originalSOPInstanceUID", "patientID", "studyInstanceUID", "seriesInstanceUID", "sopInstanceUID")
HEADER_BLOCK = block_id(0, 0)  # before every batch's block (generations count from 1)
_CSV = ContentSettings(content_type="text/csv; charset=utf-8")


@dataclass(frozen=True)
class Link:
    """One instance's row: what it was, what it became, and whether it was exported."""

    original: Identifier
    new: Identifier
    original_patient: str = ""
    new_patient: str = ""
    reason: str = ""  # empty: exported

    def cells(self) -> list[str]:
        status = "skipped" if self.reason else "exported"
        return [status, self.reason, self.original_patient, *_three(self.original), self.new_patient, *_three(self.new)]


def _three(identifier: Identifier) -> list[str]:
    return [identifier.study, identifier.series or "", identifier.instance or ""]


def csv_text(rows: Iterable[Iterable[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(["'" + c if c[:1] in ("=", "+", "-", "@") else c for c in row])
    return out.getvalue()


def blob_name(operation_id: str) -> str:
    return f"{operation_id}/{NAME}"


class LinkageTable:
    """The linkage table of one operation in the controller's container."""

    def __init__(self, container: ContainerClient, operation_id: str):
        self.blob = container.get_blob_client(blob_name(operation_id))

    def stage_header(self) -> None:
        """Stage the header line (also proves, when an export starts, that the container takes writes)."""
        data = csv_text([COLUMNS]).encode()
        self.blob.stage_block(HEADER_BLOCK, data, length=len(data))

    def stage(self, block: str, links: Iterable[Link]) -> None:
        """Stage `links` as block `block`, replacing an earlier one of that id."""
        data = csv_text(link.cells() for link in links).encode()
        if data:
            self.blob.stage_block(block, data, length=len(data))

    def commit(self, before_generation: int | None = None, lane_ends: Sequence[int] = ()) -> None:
        """Commit the header and the staged rows in export order (as the manifest: `Manifest.commit`)."""
        self.stage_header()
        commit_blocks(self.blob, before_generation, _CSV, lane_ends)


def prepare(linkage: Destination, operation_id: str, env: Mapping[str, str] | None, retry_policy: Any) -> dict[str, Any]:
    """The linkage container for the checkpoint (secrets protected), its header staged; DestinationRefused
    naming deidentification.linkage when it cannot be written."""
    try:
        client = linkage.container_client(env, retry_policy=retry_policy, connection_timeout=10, read_timeout=30)
        LinkageTable(client, operation_id).stage_header()
    except AzureError as error:
        raise DestinationRefused(f"{FIELD}: {destination_problem(error, linkage)}", FIELD) from None
    return linkage.protected(env)


def stage(opened: tuple[Destination, ContainerClient], operation_id: str, block: str, links: list[Link]) -> None:
    """A copy activity's rows, staged as its block; CopyFailed naming the linkage container when it fails."""
    with _faults(opened[0]):
        LinkageTable(opened[1], operation_id).stage(block, links)


def commit(opened: tuple[Destination, ContainerClient], operation_id: str, before_generation: int | None,
           lane_ends: Sequence[int] = ()) -> None:
    with _faults(opened[0]):
        LinkageTable(opened[1], operation_id).commit(before_generation, lane_ends)


@contextmanager
def _faults(linkage: Destination) -> Iterator[None]:
    try:
        yield
    except AzureError as error:
        raise CopyFailed(f"{FIELD}: {destination_problem(error, linkage)}") from None
