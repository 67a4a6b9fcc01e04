"""The transfer syntaxes an export can write, and what lossy ones must record (PS3.3 C.7.6.1.1.5)."""

from __future__ import annotations

from typing import Any

from pydicom import uid

TARGETS: dict[str, str] = {
    uid.ExplicitVRLittleEndian: "Explicit VR Little Endian",
    uid.ImplicitVRLittleEndian: "Implicit VR Little Endian",
    uid.DeflatedExplicitVRLittleEndian: "Deflated Explicit VR Little Endian",
    uid.RLELossless: "RLE Lossless",
    uid.JPEGLSLossless: "JPEG-LS Lossless",
    uid.JPEG2000Lossless: "JPEG 2000 Lossless",
    uid.JPEGLSNearLossless: "JPEG-LS Near-Lossless (lossy)",
    uid.JPEG2000: "JPEG 2000 (lossy)",
}
NATIVE: set[str] = {uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.DeflatedExplicitVRLittleEndian}
# Lossy targets: the encoder's setting, and the Lossy Image Compression Method (CID 7080) to record.
LOSSY_TARGETS: dict[str, tuple[dict[str, Any], str]] = {
    uid.JPEGLSNearLossless: ({"jls_error": 2}, "ISO_14495_1"),
    uid.JPEG2000: ({"j2k_cr": [10]}, "ISO_15444_1"),
}
