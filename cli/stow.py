"""STOW-RS from the client side (PS3.18 §10.5): the multipart/related request body, and the answer.

The body is read from the files part by part as it goes out, so a batch is never held in memory;
the answer's ReferencedSOPSequence and FailedSOPSequence are read into retrieve URLs and reasons.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Generator
from pathlib import Path

CHUNK = 1 << 20
# STOW-RS failure reasons (PS3.18 Table 10.5.3-1 and PS3.4 status codes) a server may send.
FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0111: "duplicate SOP instance",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand",
    0xC122: "transfer syntax not supported",
}
# Tags of the STOW-RS response (PS3.18 §10.5.3).
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_INSTANCE_UID = "00081155"
RETRIEVE_URL = "00081190"
FAILURE_REASON = "00081197"
ERROR_COMMENT = "00000902"


class MultipartBody:
    """A multipart/related body read part by part from the files, so nothing is held in memory whole.

    It has a length (so requests sends Content-Length, not chunks) and calls `on_read(n)` as bytes go out.
    """

    def __init__(self, paths: list[Path], on_read: Callable[[int], None] = lambda n: None):
        self.boundary = uuid.uuid4().hex
        self.content_type = f'multipart/related; type="application/dicom"; boundary={self.boundary}'
        head = f"--{self.boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        self._pieces: list[bytes | Path] = []
        for i, path in enumerate(paths):
            self._pieces += [(b"\r\n" if i else b"") + head, path]
        self._pieces.append(f"\r\n--{self.boundary}--\r\n".encode())
        self._length = sum(len(p) if isinstance(p, bytes) else p.stat().st_size for p in self._pieces)
        self._on_read = on_read
        self._chunks = self._generate()
        self._buffer = memoryview(b"")

    def _generate(self) -> Generator[bytes]:
        for piece in self._pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            with open(piece, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if not self._buffer:
            self._buffer = memoryview(next(self._chunks, b""))
        size = len(self._buffer) if size is None or size < 0 else size
        data, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
        self._on_read(len(data))
        return data

    def close(self) -> None:
        """Close the file being read, if the request ended before the body did."""
        self._chunks.close()


def parse_stow_response(body: object) -> tuple[dict[str, str], list[tuple[str | None, str]]]:
    """From an application/dicom+json STOW answer: {sop uid: retrieve url} stored, [(sop uid, reason)] failed."""
    if not isinstance(body, dict):
        return {}, []
    stored = {}
    for item in _items(body, REFERENCED_SOP_SEQUENCE):
        uid = _value(item, REFERENCED_SOP_INSTANCE_UID)
        if uid:
            stored[uid] = _value(item, RETRIEVE_URL) or ""
    failed = [(_value(item, REFERENCED_SOP_INSTANCE_UID), failure_reason(item))
              for item in _items(body, FAILED_SOP_SEQUENCE)]
    return stored, failed


def failure_reason(item: dict) -> str:
    """'<the server's words> (0xC000 cannot understand)', from FailureReason and ErrorComment."""
    code = _value(item, FAILURE_REASON)
    comment = re.sub(r"^part \d+: ", "", _value(item, ERROR_COMMENT) or "")  # its place in our request
    if isinstance(code, int):
        described = f"0x{code:04X} {FAILURE_REASONS.get(code, 'failure')}"
        return f"{comment} ({described})" if comment else described
    return comment or "rejected, no reason given"


def _items(body: dict, tag: str) -> list[dict]:
    element = body.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def _value(item: dict, tag: str):
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return values[0] if isinstance(values, list) and values else None
