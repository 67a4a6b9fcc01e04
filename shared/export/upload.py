"""Write one exported file to its destination blob, hashing it on the way: MD5 for the blob, SHA-256 for the manifest.

Azure keeps a blob's Content-MD5 only when the client sets it, except on a single-request upload; a
file sent in blocks would otherwise have none, and Azure's own tools could not check a download of it.
So the bytes are hashed as they pass (`Hashed`), and the MD5 is set on the Put Blob of a small file or
on the Put Block List that commits a large one. Whether the file is small is known from the source's
size when it gives one; a stream of unknown size (a DICOMweb reply) is held until it passes
`SINGLE_PUT_SIZE`, then goes on in blocks. The chunks are written as they come, never copied into a
buffer of the whole file.

    >>> digests = upload(container.get_blob_client("op/results/1/2/3.dcm"), chunks, DICOM_CONTENT)
    >>> digests.sha256.hex()  # what the manifest lists
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from copy import copy
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.storage.blob import BlobBlock, BlobClient, ContentSettings

from shared.transfer import BLOCK_SIZE, SINGLE_PUT_SIZE


@dataclass(frozen=True)
class Digests:
    """What was written: its size, its MD5 (the blob's Content-MD5) and its SHA-256 (the manifest's)."""

    size: int
    md5: bytes
    sha256: bytes


class Hashed:
    """The chunks of `chunks`, unchanged, hashed as they are iterated; `digests()` once they are exhausted."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = chunks
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self._size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._md5.update(chunk)
            self._sha256.update(chunk)
            self._size += len(chunk)
            yield chunk

    def digests(self) -> Digests:
        return Digests(self._size, self._md5.digest(), self._sha256.digest())


def upload(target: BlobClient, chunks: Iterable[bytes], content_settings: ContentSettings,
           size: int | None = None) -> Digests:
    """Write `chunks` to `target` (replacing it) with its Content-MD5 set; the digests of what was written.

    `size`, when the source knows it, lets a large file go in blocks from its first chunk; otherwise up to
    `SINGLE_PUT_SIZE` plus one chunk is held before the choice is made. In blocks, chunks are staged as
    they come, small ones gathered to at least `BLOCK_SIZE` (a blob commits at most 50 000 blocks), under
    ids numbered in order, so a retry restages the same ids; nothing is visible until the commit.
    """
    hashed = Hashed(chunks)
    held: list[bytes] = []
    held_size = 0
    blocks: list[str] = []
    in_blocks = size is not None and size > SINGLE_PUT_SIZE
    for chunk in hashed:
        held.append(chunk)
        held_size += len(chunk)
        in_blocks = in_blocks or held_size > SINGLE_PUT_SIZE
        if in_blocks and held_size >= BLOCK_SIZE:
            blocks.append(_stage(target, len(blocks), b"".join(held)))
            held, held_size = [], 0
    digests = hashed.digests()
    settings = with_md5(content_settings, digests.md5)
    if not in_blocks:
        target.upload_blob(b"".join(held), overwrite=True, content_settings=settings)
        return digests
    if held:
        blocks.append(_stage(target, len(blocks), b"".join(held)))
    target.commit_block_list([BlobBlock(block) for block in blocks], content_settings=settings)
    return digests


def hash_blob(target: BlobClient) -> Digests:
    """The digests of `target` as stored, its Content-MD5 set from them when it has none (after a server copy).

    A stored Content-MD5 that disagrees with the content raises ContentMismatch: the copy is not intact.
    """
    properties = target.get_blob_properties()
    unchanged = MatchConditions.IfNotModified
    hashed = Hashed(target.download_blob(max_concurrency=1, etag=properties.etag, match_condition=unchanged).chunks())
    for _ in hashed:
        pass
    digests = hashed.digests()
    stored = properties.content_settings.content_md5
    if stored and bytes(stored) != digests.md5:
        raise ContentMismatch(f"{target.blob_name}: its Content-MD5 does not match its content")
    if not stored:
        target.set_http_headers(with_md5(properties.content_settings, digests.md5), etag=properties.etag,
                                match_condition=unchanged)
    return digests


class ContentMismatch(ValueError):
    """A blob's content is not what its Content-MD5 says."""


def with_md5(content_settings: ContentSettings, md5: bytes) -> ContentSettings:
    settings = copy(content_settings)
    settings.content_md5 = bytearray(md5)
    return settings


def _stage(target: BlobClient, number: int, data: bytes) -> str:
    block_id = f"{number:08d}"  # every id of one blob the same length, as the service requires
    target.stage_block(block_id, data, length=len(data))
    return block_id
