"""A corpus that identifies its patients everywhere it can: for de-identification tests and benchmarks.

Every attribute of PS3.15 Table E.1-1 that pydicom knows with one VR gets a value made for it:
text a marker unique to the attribute and the patient (`P1A0042`), dates and date-times unique
dates, UIDs unique UIDs, bytes a marker. Each sequence gets an item holding more of the same, a
nested UID and a private attribute; a private block sits at the top level too. The instance also
references another one of its series (Referenced Image Sequence) and shares its series' frame of
reference, so consistency after de-identification can be checked.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from shared.deid.profile import TABLE
from testkit.instances import encode, make_dataset

UID_ROOT = "1.2.826.0.1.3680043.10.999"
_SKIPPED_GROUPS = {0x0000, 0x0002, 0x0004, 0x7FE0}  # command, file meta and directory groups; pixel data
_NOT_FILLED = {0x0020000D, 0x0020000E, 0x00080018}  # the instance's own UIDs are set from the arguments


@dataclass
class Instance:
    """One corpus file and what must not survive its de-identification."""

    data: bytes
    study: str
    series: str
    sop: str
    forbidden: set[bytes] = field(default_factory=set)  # identifying values and original UIDs


def _table_tags() -> list[tuple[int, str]]:
    rows = json.loads(TABLE.read_text(encoding="utf-8"))["rows"]
    tags = []
    for row in rows:
        if "x" in row["tag"] or row["tag"] == "GGGGEEEE":  # repeating groups, private attributes
            continue
        tag = int(row["tag"], 16)
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        if tag >> 16 in _SKIPPED_GROUPS or tag in _NOT_FILLED or " or " in vr or vr == "AT":
            continue
        tags.append((tag, vr))
    return tags


def _value(vr: str, marker: str, day: date, uid: str, forbidden: set[bytes]) -> object:
    """A value for `vr` that names this patient; what must vanish is added to `forbidden`."""
    if vr in ("AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "UR", "PN"):
        forbidden.add(marker.encode())
        return f"{marker}^{marker}" if vr == "PN" else marker
    if vr == "DA":
        forbidden.add(day.strftime("%Y%m%d").encode())
        return day.strftime("%Y%m%d")
    if vr == "DT":
        forbidden.add(day.strftime("%Y%m%d").encode())
        return day.strftime("%Y%m%d") + "101112"
    if vr == "TM":
        return "101112"
    if vr == "UI":
        forbidden.add(uid.encode())
        return uid
    if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        forbidden.add(marker.encode())
        return marker.encode().ljust(8, b"_")
    if vr == "AS":
        return "045Y"
    if vr in ("IS", "DS"):
        return "7"
    return 7  # US, SS, UL, SL, UV, SV, FL, FD


def _item(patient: int, n: int, forbidden: set[bytes]) -> Dataset:
    item = Dataset()
    marker = f"P{patient}S{n:04d}"
    item.InstitutionName = marker
    item.ReferencedSOPInstanceUID = f"{UID_ROOT}.{patient}.3.{n}"
    item.add_new(0x00110010, "LO", "ACME NESTED")
    item.add_new(0x00111001, "LO", f"P{patient}N{n:04d}")
    forbidden.update({marker.encode(), item.ReferencedSOPInstanceUID.encode(), f"P{patient}N{n:04d}".encode()})
    return item


def identifying_instance(patient: int, study: str, series: str, sop: str, referenced: str | None = None,
                         pixel_bytes: int = 64, **attributes: object) -> Instance:
    """One instance of `patient` (a small number) with every fillable Table E.1-1 attribute filled."""
    forbidden = {study.encode(), series.encode(), sop.encode()}
    ds = make_dataset(study, series, sop, pixel_bytes=pixel_bytes)
    first_day = date(1950, 1, 1) + timedelta(days=patient * 1000)
    for n, (tag, vr) in enumerate(_table_tags()):
        marker, uid = f"P{patient}A{n:04d}", f"{UID_ROOT}.{patient}.2.{n}"
        if vr == "SQ":
            ds.add_new(tag, vr, Sequence([_item(patient, n, forbidden)]))
        else:
            ds.add_new(tag, vr, _value(vr, marker, first_day + timedelta(days=n), uid, forbidden))
    ds.PatientID, ds.PatientName = f"P{patient}PID", f"P{patient}FAMILY^P{patient}GIVEN"
    forbidden.update({f"P{patient}PID".encode(), f"P{patient}FAMILY".encode(), f"P{patient}GIVEN".encode()})
    ds.FrameOfReferenceUID = f"{series}.0"
    forbidden.add(ds.FrameOfReferenceUID.encode())
    reference = Dataset()
    reference.ReferencedSOPClassUID = ds.SOPClassUID
    reference.ReferencedSOPInstanceUID = referenced or sop
    ds.ReferencedImageSequence = Sequence([reference])
    ds.BurnedInAnnotation = "NO"
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", f"P{patient}PRIVATE")
    forbidden.add(f"P{patient}PRIVATE".encode())
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = encode(ds)
    return Instance(data, study, series, sop, forbidden)


def corpus(patients: int = 2, studies: int = 2, series: int = 2, instances: int = 2) -> list[Instance]:
    """`patients` × `studies` × `series` × `instances` files; each references the first of its series."""
    files = []
    for p in range(1, patients + 1):
        for s in range(1, studies + 1):
            study = f"{UID_ROOT}.{p}.1.{s}"
            for r in range(1, series + 1):
                series_uid = f"{study}.{r}"
                first = f"{series_uid}.1"
                files += [identifying_instance(p, study, series_uid, f"{series_uid}.{i}", referenced=first)
                          for i in range(1, instances + 1)]
    return files
