"""STOW-RS (PS3.18 §10.5): split a `multipart/related; type="application/dicom"` body into DICOM
instances, check each one's header, store the good ones unchanged, and describe the outcome in the
Store Instances Response Module (PS3.18 Annex I) as DICOM JSON.

The body arrives as one bytes object (that is how the Functions runtime hands it over). Nothing
here copies it again: parts are memoryview slices of it, pydicom reads only each part's header
through a seekable view, and the blob SDK reads each part one block at a time. So a request costs
the body once plus, per parallel upload, one block (`store.BLOCK_SIZE`; a part up to
`store.SINGLE_PUT_SIZE` is read whole).

The whole body is split before anything is stored, so a malformed body stores nothing.

    >>> result = store_request(store, body, "multipart/related; type=\\"application/dicom\\"; boundary=b",
    ...                        "https://host/v1")
    >>> result.status, result.dataset["00081199"]["Value"][0]["00081190"]
    (200, {'vr': 'UR', 'Value': ['https://host/v1/studies/1.2/series/1.3/instances/1.4']})
"""

from __future__ import annotations

import io
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from typing import IO, BinaryIO, cast

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from shared.errors import ClientError
from shared.stores.blob.index import TAGS, index_metadata
from shared.stores.blob.store import DicomStore
from shared.uids import uid_problem

log = logging.getLogger(__name__)

DICOM = "application/dicom"
PARALLEL_UPLOADS = 4

# Failure Reason (0008,1197) values, PS3.18 Table I.2-2.
PROCESSING_FAILURE = 0x0110  # storing failed on our side
DOES_NOT_MATCH = 0xA900  # "Data Set does not match SOP Class": a required UID missing, invalid or not this study's
CANNOT_UNDERSTAND = 0xC000  # not a DICOM Part 10 file, or unreadable

# The UIDs every stored instance must carry: they name its blob and its reference in the response.
REQUIRED = {
    "SOPClassUID": (0x00080016, "SOP Class UID (0008,0016)"),
    "SOPInstanceUID": (0x00080018, "SOP Instance UID (0008,0018)"),
    "StudyInstanceUID": (0x0020000D, "Study Instance UID (0020,000D)"),
    "SeriesInstanceUID": (0x0020000E, "Series Instance UID (0020,000E)"),
}
_PIXEL_DATA = {0x7FE00008, 0x7FE00009, 0x7FE00010}
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ERROR_COMMENT_LENGTH = 64  # Error Comment (0000,0902) is LO


class Truncated(ValueError):
    """A data element runs past the end of its part."""


@dataclass
class Outcome:
    """What became of one part: stored (`failure` None) or failed with a Failure Reason and why."""

    part: int
    sop_class: str | None = None
    sop_instance: str | None = None
    study: str | None = None
    series: str | None = None
    failure: int | None = None
    reason: str = ""
    index: dict[str, str] | None = None  # the blob's index metadata (shared/stores/blob/index.py)


@dataclass
class StowResult:
    status: int
    dataset: dict


def store_request(
    store: DicomStore, body: bytes, content_type: str | None, base_url: str, study: str | None = None
) -> StowResult:
    """Handle one STOW-RS request; `base_url` is where `/studies` lives, `study` the one in the URL if any.

    Raises ClientError (415 or 400) when the body cannot be split into parts; nothing is stored then.
    """
    parts = split_multipart(body, boundary_of(content_type))
    outcomes = [check_part(index, headers, content, study) for index, (headers, content) in enumerate(parts, 1)]
    # Parts of the same instance go in order, in one task: concurrent block uploads to one blob would collide.
    by_instance: dict[tuple, list[tuple[Outcome, memoryview]]] = {}
    for outcome in outcomes:
        if outcome.failure is None:
            key = (outcome.study, outcome.series, outcome.sop_instance)
            by_instance.setdefault(key, []).append((outcome, parts[outcome.part - 1][1]))
    if by_instance:
        with ThreadPoolExecutor(max_workers=min(PARALLEL_UPLOADS, len(by_instance))) as pool:
            list(pool.map(lambda items: _put_in_order(store, items), by_instance.values()))
    for outcome in outcomes:
        if outcome.failure is not None:
            log.warning("STOW part %d not stored (0x%04X): %s", outcome.part, outcome.failure, outcome.reason)
    return StowResult(http_status(outcomes), response_dataset(outcomes, base_url, study))


def boundary_of(content_type: str | None) -> str:
    """The multipart boundary of a STOW request's Content-Type; ClientError (415/400) when unusable."""
    header = Message()
    header["content-type"] = content_type or ""
    media_type = header.get_content_type() if content_type else "(none)"
    kind = header.get_param("type")
    if media_type != "multipart/related" or not isinstance(kind, str) or kind.strip().lower() != DICOM:
        raise ClientError(
            415, f'Content-Type must be multipart/related; type="{DICOM}" (got {content_type or "none"})'
        )
    boundary = header.get_boundary()
    if not boundary:
        raise ClientError(400, "Content-Type multipart/related has no boundary parameter")
    if len(boundary) > 70 or not boundary.isascii():
        raise ClientError(400, "multipart boundary must be at most 70 ASCII characters (RFC 2046)")
    return boundary


def split_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], memoryview]]:
    """The (headers, content) of each part of a multipart body (RFC 2046), content as views into `body`.

    Raises ClientError(400) for an empty body, no parts, a missing delimiter or a truncated body.
    """
    if not body:
        raise ClientError(400, "the request body is empty; expected multipart/related DICOM parts")
    delimiter = b"--" + boundary.encode("ascii")
    if body.startswith(delimiter):
        position = 0
    else:
        position = body.find(b"\r\n" + delimiter)
        if position < 0:
            raise ClientError(400, f"the body does not contain the boundary {boundary!r}")
        position += 2
    view = memoryview(body)
    parts: list[tuple[dict[str, str], memoryview]] = []
    while True:
        position += len(delimiter)
        if body.startswith(b"--", position):
            break
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise ClientError(400, f"malformed or truncated multipart body after part {len(parts)}")
        following = body.find(b"\r\n" + delimiter, line_end)
        if following < 0:
            raise ClientError(
                400, f"truncated multipart body: part {len(parts) + 1} is not followed by a boundary"
            )
        parts.append(_split_part(view[line_end + 2: following], len(parts) + 1))
        position = following + 2
    if not parts:
        raise ClientError(400, "the multipart body has no parts")
    return parts


def _split_part(part: memoryview, number: int) -> tuple[dict[str, str], memoryview]:
    """A part's header fields (lower-case names) and its content."""
    if part[:2] == b"\r\n":
        return {}, part[2:]
    end = bytes(part[:65536]).find(b"\r\n\r\n")
    if end < 0:
        raise ClientError(400, f"part {number} has no blank line after its header fields")
    headers = {}
    for line in bytes(part[:end]).decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            raise ClientError(400, f"part {number} has a malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers, part[end + 4:]


def check_part(number: int, headers: dict[str, str], content: memoryview, study: str | None) -> Outcome:
    """Read one part's DICOM header (never its pixel data) and decide whether it may be stored."""
    outcome = Outcome(number)
    media_type = headers.get("content-type", DICOM).split(";")[0].strip().lower()
    if media_type != DICOM:
        return _fail(outcome, CANNOT_UNDERSTAND, f"part is {media_type}, not {DICOM}")
    try:
        dataset = read_header(content)
    except InvalidDicomError:
        return _fail(outcome, CANNOT_UNDERSTAND, "not a DICOM Part 10 file (no DICM prefix)")
    except Truncated as error:
        return _fail(outcome, CANNOT_UNDERSTAND, f"truncated: {error}")
    except Exception as error:  # noqa: BLE001 -- pydicom raises many kinds on malformed input: all "cannot read"
        return _fail(outcome, CANNOT_UNDERSTAND, f"unreadable DICOM: {error}")
    values = {keyword: dataset.get(keyword) for keyword in REQUIRED}
    outcome.index = index_metadata(dataset)
    outcome.sop_class, outcome.sop_instance, outcome.study, outcome.series = (
        str(value) if isinstance(value, str) else None for value in values.values()
    )
    for keyword, value in values.items():
        label = REQUIRED[keyword][1]
        if value is None or value == "":
            return _fail(outcome, DOES_NOT_MATCH, f"missing {label}")
        if uid_problem(value):
            return _fail(outcome, DOES_NOT_MATCH, f"{label} is not a valid UID")
    if study is not None and outcome.study != study:
        return _fail(outcome, DOES_NOT_MATCH, "Study Instance UID is not the study in the URL")
    return outcome


def read_header(content: memoryview):
    """The part's File Meta, the required UIDs and the indexed attributes, read in place up to the pixel data.

    Elements are skipped by seeking, never read; an element that runs past the end of the part
    (a truncated file) is an error. (A deflated data set is inflated by pydicom first, so positions
    in the part say nothing about it; it is checked only as far as pydicom checks it.)
    """
    reader = cast(BinaryIO, BufferReader(content))  # a binary file in all but its declared type
    meta = read_partial(reader, stop_when=lambda *_: True).file_meta  # preamble and File Meta only
    in_place = meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian
    reader.seek(0)

    def stop_at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
        if in_place and length != _UNDEFINED_LENGTH and reader.tell() + length > len(content):
            raise Truncated(f"{tag} runs past the end of the part")
        return tag in _PIXEL_DATA

    return read_partial(
        reader, stop_when=stop_at_pixels, specific_tags=[*(tag for tag, _ in REQUIRED.values()), *TAGS]
    )


def _fail(outcome: Outcome, failure: int, reason: str) -> Outcome:
    outcome.failure, outcome.reason = failure, reason
    return outcome


def _put_in_order(store: DicomStore, items: list[tuple[Outcome, memoryview]]) -> None:
    """Store the checked parts of one instance, one after the other; a storage fault fails that part only."""
    for outcome, content in items:
        try:
            store.put(outcome.study, outcome.series, outcome.sop_instance,  # type: ignore[arg-type]  # checked
                      cast(IO[bytes], BufferReader(content)), len(content), outcome.index)
        except Exception as error:  # reported in the part's item, whatever the fault
            log.exception("STOW part %d: storing %s failed", outcome.part, outcome.sop_instance)
            _fail(outcome, PROCESSING_FAILURE, f"storing failed: {type(error).__name__}")


def http_status(outcomes: list[Outcome]) -> int:
    """200 when every part was stored, 409 when none was, 202 in between (PS3.18 Table 10.5.3-1)."""
    failed = sum(outcome.failure is not None for outcome in outcomes)
    return 200 if not failed else 409 if failed == len(outcomes) else 202


def response_dataset(outcomes: list[Outcome], base_url: str, study: str | None) -> dict:
    """The Store Instances Response Module as DICOM JSON (PS3.18 Table I.1-1, PS3.18 §F.2)."""
    stored = [outcome for outcome in outcomes if outcome.failure is None]
    studies = {outcome.study for outcome in stored} | ({study} if study else set())
    dataset: dict = {
        # Type 2: the study's URL when the request concerned a single study, else empty.
        "00081190": _element("UR", f"{base_url}/studies/{studies.pop()}" if len(studies) == 1 else None),
    }
    failed = [outcome for outcome in outcomes if outcome.failure is not None]
    if failed:
        dataset["00081198"] = _element("SQ", *(_failed_item(outcome) for outcome in failed))
    if stored:
        dataset["00081199"] = _element("SQ", *(_stored_item(outcome, base_url) for outcome in stored))
    return dataset


def _reference(outcome: Outcome) -> dict:
    """SOP Instance Reference Macro (PS3.3 Table 10-11), with whatever could be read."""
    return {
        "00081150": _element("UI", outcome.sop_class),
        "00081155": _element("UI", outcome.sop_instance),
    }


def _stored_item(outcome: Outcome, base_url: str) -> dict:
    url = (f"{base_url}/studies/{outcome.study}/series/{outcome.series}"
           f"/instances/{outcome.sop_instance}")
    return {**_reference(outcome), "00081190": _element("UR", url)}


def _failed_item(outcome: Outcome) -> dict:
    reason = f"part {outcome.part}: {outcome.reason}"
    if len(reason) > _ERROR_COMMENT_LENGTH:
        reason = reason[: _ERROR_COMMENT_LENGTH - 3] + "..."
    return {
        **_reference(outcome),
        "00081197": _element("US", outcome.failure),
        "00000902": _element("LO", reason),
    }


def _element(vr: str, *values) -> dict:
    """One DICOM JSON attribute; no Value for an empty one."""
    present = [value for value in values if value is not None]
    return {"vr": vr, "Value": present} if present else {"vr": vr}


class BufferReader(io.RawIOBase):
    """A read-only, seekable file over a memoryview, so pydicom and the blob SDK read a part in place."""

    def __init__(self, view: memoryview):
        super().__init__()
        self._view = view
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._position + size)
        data = bytes(self._view[self._position: end]) if end > self._position else b""
        self._position += len(data)
        return data

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), len(self._view) - self._position))
        memoryview(buffer).cast("B")[:count] = self._view[self._position: self._position + count]
        self._position += count
        return count
