"""WADO-RS retrieve of one instance (PS3.18 §10.4): the representation the client accepts, and its bytes.

The instance is sent as stored (no transcoding), so a `transfer-syntax` parameter in Accept is
tolerated, not honoured. The body is built in one buffer, allocated once at its final size, that
the blob is downloaded into block by block: a retrieve holds the instance once (plus a block).
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

from shared.errors import ClientError
from shared.stores.blob.store import DicomStore, blob_name

DICOM = "application/dicom"
MULTIPART = "multipart/related"
SUPPORTED = f'{DICOM} or {MULTIPART}; type="{DICOM}"'


class NotAcceptable(ClientError):
    """No media range of the Accept header is one we can send (406)."""

    def __init__(self, message: str):
        super().__init__(406, message, "Accept")


@dataclass
class Retrieved:
    body: bytes
    content_type: str


def negotiate(accept: str | None) -> str:
    """DICOM or MULTIPART: the best-quality acceptable media range of `accept` (MULTIPART, the default, when absent)."""
    if not accept or not accept.strip():
        return MULTIPART
    ranges = []
    for order, item in enumerate(accept.split(",")):
        media, *raw_params = (piece.strip() for piece in item.split(";"))
        params = {}
        for raw in raw_params:
            name, _, value = raw.partition("=")
            params[name.strip().lower()] = value.strip().strip('"').lower()
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 0.0
        ranges.append((-quality, order, media.lower(), params.get("type")))
    for negative_quality, _, media, kind in sorted(ranges):
        if negative_quality >= 0:
            continue
        if media in ("*/*", "multipart/*", MULTIPART) and kind in (None, DICOM, "application/*", "*/*"):
            return MULTIPART
        if media in (DICOM, "application/*"):
            return DICOM
    raise NotAcceptable(f"cannot send any of Accept: {accept}; this server sends {SUPPORTED}")


def retrieve(store: DicomStore, study: str, series: str, instance: str, accept: str | None) -> Retrieved:
    """The instance as the client asked for it.

    Raises NotAcceptable before touching storage, and store.InstanceChangedOrGone when it is absent.
    """
    media = negotiate(accept)
    download = store.download(blob_name(study, series, instance))
    boundary = uuid.uuid4().hex
    head, tail, content_type = b"", b"", DICOM
    if media == MULTIPART:
        head = f"--{boundary}\r\nContent-Type: {DICOM}\r\n\r\n".encode("ascii")
        tail = f"\r\n--{boundary}--\r\n".encode("ascii")
        content_type = f'{MULTIPART}; type="{DICOM}"; boundary={boundary}'
    buffer = _sized_buffer(len(head) + download.size + len(tail))
    buffer.write(head)
    download.readinto(buffer)
    buffer.write(tail)
    return Retrieved(buffer.getvalue(), content_type)


def _sized_buffer(size: int) -> io.BytesIO:
    """A BytesIO allocated once at `size`: filling it never reallocates (and so never copies), and
    getvalue() hands its buffer over as the bytes object without a copy."""
    buffer = io.BytesIO()
    if size:
        buffer.seek(size - 1)
        buffer.write(b"\0")
        buffer.seek(0)
    return buffer
