"""One instance's bytes as the output step reads them: spooled and its header parsed once, or only its header tapped.

`spooled` writes the file as it streams in to a temporary file (kept in memory up to `IN_MEMORY`, on
local disk beyond), and parses its header up to the pixel data: transcoding and rendering then read
the pixel data a frame at a time from that file (shared/outputs/frames.py), so a large instance is
never whole in memory. The file is deleted when the block ends. Instances over `MAX_INSTANCE` are skipped.
`HeaderTap` lets a file stream by unchanged while keeping its first bytes, so a copy as stored can
still give a metadata row from the header it carried, without a second read.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, cast

from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset

from shared.outputs.types import NotProduced
from shared.transfer import BLOCK_SIZE

MAX_INSTANCE = 2 * 1024**3
IN_MEMORY = 16 * 1024**2  # smaller files are spooled in memory: a disk round trip would only slow them down
HEADER_BYTES = 4 * 1024**2  # the headers of all but exotic instances fit, sequences included


@dataclass
class Instance:
    """A stored instance: its header parsed up to the pixel data, and its whole file to read the pixels from."""

    header: FileDataset
    file: BinaryIO  # seekable; the output step reads it, never writes it
    size: int
    pixel_offset: int  # where the Pixel Data element starts in `file` (`size` when there is none)

    def chunks(self) -> Iterator[bytes]:
        """The file as it came, a block at a time."""
        self.file.seek(0)
        while chunk := self.file.read(BLOCK_SIZE):
            yield chunk

    def whole(self) -> FileDataset:
        """The whole data set, pixel data included, in memory: only where a frame at a time cannot be read."""
        self.file.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dcmread(self.file)


@contextmanager
def spooled(chunks: Iterable[bytes]) -> Iterator[Instance]:
    """The instance in `chunks`, spooled; NotProduced when it is too large or not DICOM."""
    with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY) as file:
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_INSTANCE:
                raise NotProduced(f"is larger than {MAX_INSTANCE // 1024**3} GiB, the most the output step reads")
            file.write(chunk)
        file.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = dcmread(file, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - pydicom raises many kinds on a file that is not DICOM
            raise NotProduced("the file cannot be parsed as DICOM") from None
        # pydicom stops at the pixel data's tag; a deflated file is read to its end (its offsets mean nothing)
        yield Instance(header, cast(BinaryIO, file), size, min(file.tell(), size))


class HeaderTap:
    """The chunks, unchanged, with their first `HEADER_BYTES` kept to parse the header afterwards."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = chunks
        self._kept: list[bytes] = []
        self._size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self._size < HEADER_BYTES:
                self._kept.append(chunk[:HEADER_BYTES - self._size])
                self._size += len(self._kept[-1])
            yield chunk

    def dataset(self) -> Dataset:
        """The header (up to the pixel data); empty when it cannot be parsed from the bytes kept."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return dcmread(io.BytesIO(b"".join(self._kept)), stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - a row with the file's path and digests only
            return Dataset()
