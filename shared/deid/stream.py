"""De-identify one DICOM file while it streams: parse the header, rewrite it, pass the pixel data through.

Only the part before the pixel data is parsed (pydicom, `stop_before_pixels`); it is rewritten
with a rebuilt file meta information (zero preamble, the new SOP Instance UID, the same transfer
syntax) and written out, then the pixel data element goes through byte for byte in the chunks it
arrives in, so a 1 GiB instance costs about one chunk of memory. Anything after the pixel data
(padding, signatures, private groups) is parsed and de-identified like the header.

Refused, with `NotDeidentified` (the file is skipped, safe by default): a file pydicom cannot
parse, a header larger than `MAX_HEADER`, a deflated transfer syntax (the whole data set is
compressed, so its pixels cannot be passed through), BurnedInAnnotation YES, no study, series
or SOP instance UID.

Example:
    file = deidentify_file(chunks, deidentifier)
    upload(f"{file.identifier.study}/…", file.chunks)
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import dcmwrite, write_dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from shared.deid.dataset import Deidentifier, NotDeidentified
from shared.uids import Identifier, is_uid

MAX_HEADER = 64 * 1024 * 1024
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}  # Float, Double Float and Pixel Data
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
UNPARSABLE = "the file cannot be parsed as DICOM"


_UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass(frozen=True)
class DeidentifiedFile:
    identifier: Identifier  # the new study/series/sop
    chunks: Iterator[bytes]  # the de-identified file; NotDeidentified may still come from its end
    original: Identifier  # the study/series/sop the file had (for the linkage table only)
    patient_id: str = ""  # the Patient ID the file had (for the linkage table only)
    pseudonym: str = ""  # the Patient ID it has now


def deidentify_file(chunks: Iterable[bytes], deidentifier: Deidentifier) -> DeidentifiedFile:
    """The de-identified file of the original's `chunks`; NotDeidentified when it must be skipped.

    Reads only as far as the pixel data before returning; the rest is read as the result is consumed.
    """
    source = iter(chunks)
    ds, data, at = _header(source)
    patient = ""
    try:
        patient = str(ds.get("PatientID", "") or "")
        original = Identifier(*(str(ds.get(k, "")) for k in _UID_KEYWORDS))
        instance = deidentifier.header(ds)
        if not all(is_uid(ds.get(k)) for k in ("SOPClassUID", *_UID_KEYWORDS)):
            raise NotDeidentified("the file has no valid SOP class, study, series or SOP instance UID")
        identifier = Identifier(*(str(ds.get(k, "")) for k in _UID_KEYWORDS))
        pseudonym = str(ds.get("PatientID", "") or "")
        head = _write_header(ds)
    except NotDeidentified as refused:
        refused.patient_id = patient
        raise
    except Exception:  # noqa: BLE001 - whatever pydicom raises on values it cannot decode or encode
        raise NotDeidentified(UNPARSABLE, patient) from None
    encoding = ds.original_encoding

    def body() -> Iterator[bytes]:
        try:
            yield head
            rest = _Bytes(data[at:], source)
            while rest.pixel_data_next(encoding):
                yield from rest.element(encoding)
            trailer = rest.remainder()
            if trailer:
                yield _write_trailer(trailer, encoding, deidentifier, instance)
        except NotDeidentified as refused:
            refused.patient_id = patient
            raise

    return DeidentifiedFile(identifier, body(), original, patient, pseudonym)


def _header(source: Iterator[bytes]) -> tuple[FileDataset, bytes, int]:
    """(the data set before the pixel data, the bytes read so far, where the pixel data starts in them)."""
    parts: list[bytes] = []
    size = tried = 0
    while True:
        chunk = next(source, None)
        if chunk is not None:
            parts.append(chunk)
            size += len(chunk)
            if size < 2 * tried:  # parse again only once the data has doubled: linear in the header's size
                continue
        data = b"".join(parts)
        parts, tried = [data], size
        stream = io.BytesIO(data)
        try:
            ds = dcmread(stream, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - a header cut short fails to parse: read on, unless that was all
            ds = None
        if ds is not None and ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            raise NotDeidentified("a deflated transfer syntax cannot be de-identified while streaming")
        if ds is not None and (stream.tell() < len(data) or chunk is None):  # at the pixel data, or all header
            return ds, data, stream.tell()
        if chunk is None:
            raise NotDeidentified(UNPARSABLE)
        if size > MAX_HEADER:
            raise NotDeidentified(f"the header is larger than {MAX_HEADER // 2**20} MiB")


def _write_header(ds: FileDataset) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def _write_trailer(data: bytes, encoding: tuple, deidentifier: Deidentifier, instance) -> bytes:
    implicit, little = encoding
    try:
        ds = read_dataset(io.BytesIO(data), implicit, little, len(data))
        deidentifier.trailer(ds, instance)
        out = DicomBytesIO()
        out.is_implicit_VR, out.is_little_endian = implicit, little
        write_dataset(out, ds)
    except Exception:  # noqa: BLE001 - as for the header
        raise NotDeidentified(UNPARSABLE) from None
    return out.getvalue()


class _Bytes:
    """The file's bytes from the pixel data on: a few bytes read at a time, or many passed through."""

    def __init__(self, first: bytes, rest: Iterator[bytes]):
        self._data, self._at, self._rest = first, 0, rest

    def _fill(self, n: int) -> bool:
        while len(self._data) - self._at < n:
            chunk = next(self._rest, None)
            if chunk is None:
                return False
            self._data, self._at = self._data[self._at:] + chunk, 0
        return True

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise NotDeidentified("the file is truncated")
        self._at += n
        return self._data[self._at - n:self._at]

    def _through(self, n: int) -> Iterator[bytes]:
        while n:
            if not self._fill(1):
                raise NotDeidentified("the file is truncated")
            piece = min(n, len(self._data) - self._at)
            yield self._data if (self._at, piece) == (0, len(self._data)) else self._data[self._at:self._at + piece]
            self._at += piece
            n -= piece

    def pixel_data_next(self, encoding: tuple) -> bool:
        if not self._fill(4):
            return False
        group, element = struct.unpack("<HH" if encoding[1] else ">HH", self._data[self._at:self._at + 4])
        return (group << 16 | element) in PIXEL_TAGS

    def element(self, encoding: tuple) -> Iterator[bytes]:
        """One element passed through unchanged, encapsulated (undefined length) or not."""
        implicit, little = encoding
        order = "<" if little else ">"
        head = self._take(8)
        if implicit:
            length = struct.unpack(order + "L", head[4:8])[0]
        elif head[4:6] in _LONG_VRS:
            head += self._take(4)
            length = struct.unpack(order + "L", head[8:12])[0]
        else:
            length = struct.unpack(order + "H", head[6:8])[0]
        yield head
        if length != _UNDEFINED:
            yield from self._through(length)
            return
        while True:  # fragments, each an item, up to the sequence delimiter
            item = self._take(8)
            yield item
            group, element, size = struct.unpack(order + "HHL", item)
            if group << 16 | element == _SEQUENCE_END:
                return
            if group << 16 | element != _ITEM:
                raise NotDeidentified(UNPARSABLE)
            yield from self._through(size)

    def remainder(self) -> bytes:
        """Whatever follows the pixel data (at most MAX_HEADER bytes)."""
        while self._fill(len(self._data) - self._at + 1):
            if len(self._data) - self._at > MAX_HEADER:
                raise NotDeidentified(f"more than {MAX_HEADER // 2**20} MiB follow the pixel data")
        return self._data[self._at:]

