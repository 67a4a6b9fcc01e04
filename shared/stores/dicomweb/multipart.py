"""The one DICOM part of a WADO-RS `multipart/related` reply, read as a stream (python-multipart parses).

A reply is never held whole: chunks of the part are handed on as the network delivers them. The
reply must end with its closing boundary, and the part must be as long as its own Content-Length
when it gives one: a reply cut short is an error (the batch is retried), never a truncated file.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import Message

from python_multipart.multipart import MultipartParser

from shared.stores.interface import StoreError


class DicomPart:
    """The first part of a multipart body, its headers read up front (for its size), its bytes on demand."""

    def __init__(self, content_type: str, body: Iterator[bytes], what: str):
        self._what = what
        boundary = _boundary(content_type)
        if boundary is None:
            raise StoreError(f"{what}: the reply is {content_type or 'untyped'}, not multipart/related "
                             "with a boundary")
        self._body = body
        self._pending: list[bytes] = []
        self._header: list[bytes] = [b"", b""]
        self._headers: dict[str, str] = {}
        self._parts = 0
        self._headers_read = self._ended = False
        self._parser = MultipartParser(boundary, callbacks={
            "on_part_begin": self._begin, "on_part_data": self._data, "on_header_field": self._field,
            "on_header_value": self._value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_end": self._end,
        }, max_header_count=32)  # servers add Content-Location, Content-ID, MIME-Version ...
        while not self._headers_read:
            if not self._feed():
                raise StoreError(f"{what}: the reply ended before its first part")
        self.size = self._declared_size()

    def chunks(self) -> Iterator[bytes]:
        """The part's bytes; StoreError if the reply ends early or holds a second part."""
        written = 0
        while True:
            for chunk in self._pending:
                written += len(chunk)
                yield chunk
            self._pending.clear()
            if self._parts > 1:
                raise StoreError(f"{self._what}: the reply holds more than one part")
            if not self._feed():
                break
        if not self._ended:
            raise StoreError(f"{self._what}: the reply was cut short (no closing boundary after {written} bytes)")
        if self.size is not None and written != self.size:
            raise StoreError(f"{self._what}: the part held {written} bytes, not the {self.size} it declared")

    def _feed(self) -> bool:
        """Parse the next chunk of the body; False once it is exhausted."""
        chunk = next(self._body, None)
        if chunk is None:
            return False
        try:
            self._parser.write(chunk)
        except Exception as error:  # noqa: BLE001 - any parse error means a malformed reply
            raise StoreError(f"{self._what}: malformed multipart reply ({error})") from None
        return True

    def _declared_size(self) -> int | None:
        value = self._headers.get("content-length", "")
        return int(value) if value.isdigit() else None

    def _begin(self) -> None:
        self._parts += 1

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._parts == 1 and end > start:
            self._pending.append(bytes(data[start:end]))

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header[0] += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header[1] += data[start:end]

    def _header_end(self) -> None:
        name, value = (part.decode("latin-1").strip() for part in self._header)
        if self._parts == 1:
            self._headers[name.lower()] = value
        self._header = [b"", b""]

    def _headers_finished(self) -> None:
        self._headers_read = True

    def _end(self) -> None:
        self._ended = True


def _boundary(content_type: str) -> str | None:
    message = Message()
    message["Content-Type"] = content_type
    if message.get_content_type() != "multipart/related":
        return None
    return message.get_param("boundary")  # type: ignore[return-value]
