"""WADO-RS retrieve of one instance (PS3.18 §10.4): the representation the client accepts, and its bytes.

The instance is sent as stored (no transcoding), so a `transfer-syntax` parameter in Accept is
tolerated, not honoured. The body is built in one buffer that the blob is downloaded into block
by block, so a retrieve holds the instance once (plus a few bytes of multipart framing).
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

from .store import DicomStore, blob_name

DICOM = "application/dicom"
MULTIPART = "multipart/related"
SUPPORTED = f'{DICOM} or {MULTIPART}; type="{DICOM}"'


class NotAcceptable(ValueError):
    """No media range of the Accept header is one we can send."""


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
    buffer = io.BytesIO()
    if media == DICOM:
        download.readinto(buffer)
        return Retrieved(buffer.getvalue(), DICOM)
    boundary = uuid.uuid4().hex
    buffer.write(f"--{boundary}\r\nContent-Type: {DICOM}\r\n\r\n".encode("ascii"))
    download.readinto(buffer)
    buffer.write(f"\r\n--{boundary}--\r\n".encode("ascii"))
    return Retrieved(buffer.getvalue(), f'{MULTIPART}; type="{DICOM}"; boundary={boundary}')
