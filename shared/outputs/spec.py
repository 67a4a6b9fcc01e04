"""What the request's `output` and `metadata` ask for, validated before anything starts.

    "output": {"format": "dicom", "transferSyntax": "1.2.840.10008.1.2.4.90"}
    "output": {"format": "png", "bitDepth": 16, "window": {"center": 40, "width": 400}}
    "output": {"format": "jpeg", "quality": 95}
    "metadata": {"formats": ["jsonl", "parquet"], "attributes": ["PatientID", "Modality"]}

Names are case-insensitive, as in the rest of the request. Every refusal is an `OutputError`, a 400
`ClientError` naming the field (`output.transferSyntax`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from shared.errors import ClientError
from shared.outputs.syntaxes import LOSSY_TARGETS, TARGETS
from shared.request_fields import named_fields

FORMATS = ("dicom", "png", "jpeg")
WINDOWS = ("auto", "minmax")
METADATA_FORMATS = ("jsonl", "parquet")
# The documented default columns: patient, study, series, instance, equipment and image attributes.
DEFAULT_ATTRIBUTES = (
    "PatientID", "PatientName", "PatientSex", "PatientAge", "PatientBirthDate",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber",
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality", "BodyPartExamined",
    "SOPInstanceUID", "SOPClassUID", "InstanceNumber", "ContentDate",
    "Manufacturer", "ManufacturerModelName",
    "Rows", "Columns", "NumberOfFrames", "BitsAllocated", "BitsStored", "PhotometricInterpretation",
    "PixelSpacing", "SliceThickness", "ImagePositionPatient", "ImageOrientationPatient",
    "WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope", "TransferSyntaxUID",
)
MAX_ATTRIBUTES = 500


class OutputError(ClientError):
    """An `output` or `metadata` the server refuses: a 400 whose `field` is the property at fault."""

    def __init__(self, message: str, field: str):
        super().__init__(400, message, field)


@dataclass(frozen=True)
class OutputSpec:
    """The files each exported instance becomes, and whether a metadata table is written."""

    format: str = "dicom"
    transfer_syntax: str | None = None  # None: as stored
    allow_lossy: bool = False
    bit_depth: int = 8  # png
    window: str | tuple[float, float] = "auto"  # "auto", "minmax" or (center, width)
    quality: int = 95  # jpeg
    metadata_formats: tuple[str, ...] = ()
    metadata_attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES

    @property
    def as_stored(self) -> bool:
        """Files are copied as the store holds them (today's behaviour): no output step."""
        return self.format == "dicom" and self.transfer_syntax is None

    @property
    def plain(self) -> bool:
        """Nothing to do beyond the copy: no output step and no metadata table."""
        return self.as_stored and not self.metadata_formats

    def to_json(self) -> dict[str, Any]:
        window = self.window if isinstance(self.window, str) else {"center": self.window[0], "width": self.window[1]}
        return {"format": self.format, "transferSyntax": self.transfer_syntax, "allowLossy": self.allow_lossy,
                "bitDepth": self.bit_depth, "window": window, "quality": self.quality,
                "metadata": {"formats": list(self.metadata_formats), "attributes": list(self.metadata_attributes)}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> OutputSpec:
        if not data:
            return cls()
        window = data["window"]
        return cls(format=data["format"], transfer_syntax=data["transferSyntax"], allow_lossy=data["allowLossy"],
                   bit_depth=data["bitDepth"],
                   window=window if isinstance(window, str) else (window["center"], window["width"]),
                   quality=data["quality"], metadata_formats=tuple(data["metadata"]["formats"]),
                   metadata_attributes=tuple(data["metadata"]["attributes"]))


def parse_output(output: Any, metadata: Any) -> OutputSpec:
    """The spec of the request's `output` and `metadata` (either may be None); OutputError naming the field."""
    spec: dict[str, Any] = {}
    if output is not None:
        spec.update(_output(_object(output, "output")))
    if metadata is not None:
        spec.update(_metadata(_object(metadata, "metadata")))
    return OutputSpec(**spec)


def _output(given: Mapping[str, Any]) -> dict[str, Any]:
    fields = named_fields(given, "output", ("format", "transferSyntax", "allowLossy", "bitDepth", "window", "quality"))
    fmt = fields.get("format")
    if not isinstance(fmt, str) or fmt.strip().lower() not in FORMATS:
        raise OutputError(f"output.format must be one of {', '.join(FORMATS)}", "output.format")
    fmt = fmt.strip().lower()
    allowed = {"dicom": ("format", "transferSyntax", "allowLossy"), "png": ("format", "bitDepth", "window"),
               "jpeg": ("format", "quality", "window")}[fmt]
    for name in fields:
        if name not in allowed:
            raise OutputError(f"output.{name} does not apply to format '{fmt}'; it takes {', '.join(allowed)}",
                              f"output.{name}")
    spec: dict[str, Any] = {"format": fmt}
    if fmt == "dicom":
        spec.update(_transfer_syntax(fields))
    if "bitDepth" in fields:
        if type(fields["bitDepth"]) is not int or fields["bitDepth"] not in (8, 16):
            raise OutputError("output.bitDepth must be 8 or 16", "output.bitDepth")
        spec["bit_depth"] = fields["bitDepth"]
    if "quality" in fields:
        quality = fields["quality"]
        if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
            raise OutputError("output.quality must be a whole number from 1 to 100", "output.quality")
        spec["quality"] = quality
    if "window" in fields:
        spec["window"] = _window(fields["window"])
    return spec


def _transfer_syntax(fields: Mapping[str, Any]) -> dict[str, Any]:
    lossy = fields.get("allowLossy", False)
    if not isinstance(lossy, bool):
        raise OutputError("output.allowLossy must be true or false", "output.allowLossy")
    uid = fields.get("transferSyntax")
    if uid is None:
        if lossy:
            raise OutputError("output.allowLossy needs output.transferSyntax", "output.allowLossy")
        return {}
    if not isinstance(uid, str) or uid.strip() not in TARGETS:
        shown = repr(uid[:70]) if isinstance(uid, str) else "that value"
        raise OutputError(f"output.transferSyntax {shown} is not one this service writes; it writes: "
                          + ", ".join(f"{u} ({name})" for u, name in TARGETS.items()), "output.transferSyntax")
    uid = uid.strip()
    if uid in LOSSY_TARGETS and not lossy:
        raise OutputError(f"output.transferSyntax {uid} ({TARGETS[uid]}) is lossy: set output.allowLossy "
                          "to true to accept it", "output.transferSyntax")
    return {"transfer_syntax": uid, "allow_lossy": lossy}


def _window(value: Any) -> str | tuple[float, float]:
    if isinstance(value, str) and value.strip().lower() in WINDOWS:
        return value.strip().lower()
    if isinstance(value, dict):
        fields = named_fields(value, "output.window", ("center", "width"))
        center, width = fields.get("center"), fields.get("width")
        if (isinstance(center, int | float) and isinstance(width, int | float)
                and not isinstance(center, bool) and not isinstance(width, bool) and width >= 1):
            return (float(center), float(width))
    raise OutputError("output.window must be 'auto', 'minmax' or {\"center\": c, \"width\": w} with width ≥ 1",
                      "output.window")


def _metadata(given: Mapping[str, Any]) -> dict[str, Any]:
    fields = named_fields(given, "metadata", ("formats", "attributes"))
    formats = fields.get("formats", ["jsonl"])
    if (not isinstance(formats, list) or not formats
            or any(not isinstance(f, str) or f.strip().lower() not in METADATA_FORMATS for f in formats)):
        raise OutputError(f"metadata.formats must be a non-empty list of {', '.join(METADATA_FORMATS)}",
                          "metadata.formats")
    spec: dict[str, Any] = {"metadata_formats": tuple(dict.fromkeys(f.strip().lower() for f in formats))}
    if "attributes" in fields:
        attributes = fields["attributes"]
        if not isinstance(attributes, list) or not 0 < len(attributes) <= MAX_ATTRIBUTES:
            raise OutputError(f"metadata.attributes must be a list of 1 to {MAX_ATTRIBUTES} DICOM keywords",
                              "metadata.attributes")
        for index, keyword in enumerate(attributes):
            if not isinstance(keyword, str) or tag_for_keyword(keyword) is None or dictionary_VR(keyword) == "SQ":
                raise OutputError(f"metadata.attributes[{index}] must be the keyword of a DICOM attribute that "
                                  "is not a sequence, e.g. 'PatientID'", f"metadata.attributes[{index}]")
        spec["metadata_attributes"] = tuple(dict.fromkeys(attributes))
    return spec


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise OutputError(f"{path} must be an object", path)
    return value
