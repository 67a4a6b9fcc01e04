"""`<operation id>/manifest-sha256.txt`: the SHA-256 of every exported file, one line each, once each.

A line is `<sha256 hex>  results/<study>/<series>/<sop>.dcm` (two spaces: the format of `sha256sum`
and of BagIt payload manifests), so `sha256sum -c manifest-sha256.txt` checks a downloaded copy of
`<op>/`. The names are UIDs (digits and dots), so no line needs sha256sum's escaping.

The manifest is a block blob built without holding its lines anywhere: each copy batch stages its
lines as one block whose id is the batch's place in the export (generation, batch), so a retried or
re-run batch replaces its own block instead of adding lines; when the export ends, `commit`
commits every block in id order and returns the result's SHA-256 and size for the operation status. The orchestration carries nothing of it but the final href.
Azure commits at most 50 000 blocks to one blob: 5 million files at the default BatchSize of 100.
An export run as lanes (shared/export/lanes.py) stages into the same blob: lane n numbers its generations from
`first_generation(n)`, so no two lanes stage the same block, and the manifest lists lane 0's blocks, then lane 1's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobClient, ContainerClient, ContentSettings

NAME = "manifest-sha256.txt"
MAX_BLOCKS = 50_000  # the most blocks a block blob may commit
_TEXT = ContentSettings(content_type="text/plain; charset=utf-8")


@dataclass(frozen=True)
class Digest:
    """What was committed: the digest and size that the operation status records outside the container."""

    sha256: str
    size: int


class ManifestTooLarge(RuntimeError):
    """More batches than one blob can commit as blocks."""


def blob_name(operation_id: str) -> str:
    return f"{operation_id}/{NAME}"


def block_id(generation: int, batch: int) -> str:
    """The block of batch `batch` of generation `generation`: fixed width, so text order is export order."""
    return f"{generation:010d}-{batch:06d}"


LANE_GENERATIONS = 10_000_000  # the generations each lane may number: 10 digits hold 999 lanes


def first_generation(lane: int) -> int:
    """Lane `lane`'s first generation; lane 0's is 1, an export's without lanes."""
    return lane * LANE_GENERATIONS + 1


LAST_BLOCK = block_id(9_999_999_999, 999_999)  # files written at the end (the metadata table), listed last


def line(sha256: bytes, path: str) -> str:
    """One manifest line; `path` is relative to `<op>/`, e.g. `results/1.2/1.2.3/1.2.3.4.dcm`."""
    return f"{sha256.hex()}  {path}\n"


class Manifest:
    """The manifest of one operation in the destination container."""

    def __init__(self, container: ContainerClient, operation_id: str):
        self.blob = container.get_blob_client(blob_name(operation_id))

    def stage(self, block: str, lines: Iterable[str]) -> None:
        """Stage `lines` as block `block`, replacing an earlier one of that id."""
        data = "".join(lines).encode()
        if data:
            self.blob.stage_block(block, data, length=len(data))

    def commit(self, before_generation: int | None = None, lane_ends: Sequence[int] = ()) -> Digest:
        """Commit the staged blocks in id order (only those of generations before `before_generation` when
        given: an export that failed lists what its completed generations wrote, as its counts do; with
        `lane_ends`, those of lane n's generations before `lane_ends[n]`), and read the result back to hash it.
        A commit run again after it succeeded changes nothing.
        """
        etag = commit_blocks(self.blob, before_generation, _TEXT, lane_ends)
        digest, size = hashlib.sha256(), 0
        for chunk in self.blob.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified).chunks():
            digest.update(chunk)
            size += len(chunk)
        return Digest(digest.hexdigest(), size)


def commit_blocks(blob: BlobClient, before_generation: int | None, content_settings: ContentSettings,
                  lane_ends: Sequence[int] = ()) -> str:
    """Commit `blob`'s staged and committed blocks in id order (only those of generations before
    `before_generation` when given, and of lane n's generations before `lane_ends[n]`); the new ETag. Also for
    the linkage table (shared/export/linkage.py)."""
    try:
        committed, uncommitted = blob.get_block_list("all")
    except ResourceNotFoundError:  # nothing staged: no file was exported
        committed, uncommitted = [], []
    blocks = sorted({block.id for block in [*committed, *uncommitted]})
    if before_generation is not None:
        blocks = [b for b in blocks if _generation(b) < before_generation]
    if lane_ends:
        last = len(lane_ends) - 1
        blocks = [b for b in blocks if _generation(b) < lane_ends[min(_generation(b) // LANE_GENERATIONS, last)]]
    if len(blocks) > MAX_BLOCKS:
        raise ManifestTooLarge(f"the manifest has {len(blocks):,} batches and Azure commits at most "
                               f"{MAX_BLOCKS:,} blocks to one blob: export with a larger Export__BatchSize")
    return str(blob.commit_block_list([BlobBlock(block) for block in blocks], content_settings=content_settings)["etag"])


def _generation(block: str) -> int:
    return int(block.split("-")[0])
