"""Re-encode one instance's pixel data in the transfer syntax the export asked for.

Decoding uses pydicom's pixel decoders with the plugins in requirements.txt (pylibjpeg with
openjpeg and rle, pyjpegls, python-gdcm): any stored syntax one of them reads is accepted.
Encoding: native syntaxes are written by pydicom (Deflated too); RLE Lossless by pydicom or
pylibjpeg-rle, JPEG-LS by pyjpegls, JPEG 2000 by pylibjpeg-openjpeg.

- An instance already in the target syntax, or without pixel data (SR, PDF, presentation
  states), is written unchanged.
- The SOP Instance UID is kept by a lossless transcoding. A lossy one records Lossy Image
  Compression, its ratio and method (PS3.3 C.7.6.1.1.5) and gets a new SOP Instance UID derived
  from the old one and the syntax (the same on a retry, so a retried batch rewrites the same blob).
- Colour data compressed as YBR by a lossy codec is decoded to RGB, as pydicom does.
The whole instance is held in memory (see docs/OUTPUTS.md).
"""

from __future__ import annotations

import io

from pydicom import dcmwrite
from pydicom.dataset import FileDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from shared.outputs.syntaxes import LOSSY_TARGETS, NATIVE, TARGETS
from shared.outputs.types import NotProduced

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def transcode(ds: FileDataset, raw: bytes, target: str) -> tuple[FileDataset, bytes]:
    """(the data set as written, the file's bytes) in syntax `target`; NotProduced when it cannot be."""
    stored = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    if stored == target or "PixelData" not in ds:
        if any(k in ds for k in PIXEL_KEYWORDS[1:]):
            raise NotProduced("float pixel data cannot be transcoded")
        return ds, raw
    try:
        _to_native(ds, stored)
        native_size = len(ds.PixelData)
        if target not in NATIVE:
            settings, method = LOSSY_TARGETS.get(target, ({}, ""))
            ds.compress(target, generate_instance_uid=False, **settings)
            if method:
                _record_lossy(ds, native_size / max(1, len(ds.PixelData)), method, target)
        ds.file_meta.TransferSyntaxUID = UID(target)
        for _ in ds.iterall():  # every element decoded, so none is written in the encoding it was read in
            pass
        out = io.BytesIO()
        dcmwrite(out, ds, enforce_file_format=True)
    except NotProduced:
        raise
    except Exception as error:  # noqa: BLE001 - the codecs raise many kinds; none quotes patient data
        raise NotProduced(f"cannot be transcoded to {TARGETS[target]}: {type(error).__name__}") from None
    return ds, out.getvalue()


def _to_native(ds: FileDataset, stored: UID) -> None:
    """Decode the pixel data in place to native little-endian (compressed or big-endian sources)."""
    if stored.is_compressed:
        try:
            ds.decompress(generate_instance_uid=False)
            return
        except ValueError:  # pydicom's own conversion trips on some files (a read-only array): set it ourselves
            pass
    elif stored.is_little_endian:
        return
    arr = ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<"))  # a copy, little-endian
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # before: pydicom sets no big-endian pixels
    photometric = str(ds.PhotometricInterpretation)
    if photometric.startswith("YBR") and arr.ndim > 2 and arr.shape[-1] == 3:
        photometric = "RGB"  # pydicom converts YBR to RGB when it decodes
    ds.set_pixel_data(arr, photometric, int(ds.BitsStored), generate_instance_uid=False)


def _record_lossy(ds: FileDataset, ratio: float, method: str, target: str) -> None:
    """PS3.3 C.7.6.1.1.5: once lossy, always marked so; every lossy step appends its ratio and method."""
    ratios = [str(r) for r in ds.get("LossyImageCompressionRatio", []) or []] if ds.get(
        "LossyImageCompression") == "01" else []
    methods = [str(m) for m in ds.get("LossyImageCompressionMethod", []) or []] if ratios else []
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.4g}"[:16]]
    ds.LossyImageCompressionMethod = [*methods, method]
    new = generate_uid(entropy_srcs=[str(ds.SOPInstanceUID), target])
    ds.SOPInstanceUID = new
    ds.file_meta.MediaStorageSOPInstanceUID = new
