"""One instance's bytes as the output step reads them: whole and parsed once, or only its header tapped.

`read_instance` holds the whole file: transcoding and rendering need its pixel data, and pydicom
decodes from memory (the limit is `MAX_INSTANCE`; larger instances are skipped, see docs/OUTPUTS.md).
`HeaderTap` lets a file stream by unchanged while keeping its first bytes, so a copy as stored can
still give a metadata row from the header it carried, without a second read.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Iterator

from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset

from shared.outputs.types import NotProduced

MAX_INSTANCE = 2 * 1024**3
HEADER_BYTES = 4 * 1024**2  # the headers of all but exotic instances fit, sequences included


def read_instance(chunks: Iterable[bytes]) -> tuple[FileDataset, bytes]:
    """(the parsed data set, the file's bytes); NotProduced when it is too large or not DICOM."""
    parts, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_INSTANCE:
            raise NotProduced(f"is larger than {MAX_INSTANCE // 1024**3} GiB, the most the output step reads")
        parts.append(chunk)
    raw = b"".join(parts)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dcmread(io.BytesIO(raw)), raw
    except Exception:  # noqa: BLE001 - pydicom raises many kinds on a file that is not DICOM
        raise NotProduced("the file cannot be parsed as DICOM") from None


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
