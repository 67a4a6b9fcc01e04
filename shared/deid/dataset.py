"""Apply the profile to a pydicom data set: every attribute, inside nested sequences too.

What each action does here (PS3.15 Table E.1-1a), after `Profile.action` resolved compound codes:
- X removes; Z empties (a sequence loses its items); D puts a dummy of the VR (a UID gets its
  pseudonym, a sequence one empty item); K keeps (a sequence's items are processed in turn);
  U replaces each UID by its keyed pseudonym.
- C, clean: dates move back by the patient's offset (DA, and the date of DT; TM is kept, the
  offset being whole days); text keeps its words but every identifying value found in this
  instance (names, IDs, dates, addresses... of attributes the profile removes) becomes `***`, and
  so does whatever looks like anyone's identifier (descriptors.py: names, IDs, dates, phones,
  e-mails); a value that cannot be cleaned with confidence is removed;
  a sequence's items are processed; anything else is removed.
- Patient ID and Patient's Name (Z) become the patient's pseudonym rather than empty.
- Attributes the table does not list are kept, except UIDs, which are replaced unless they are
  the standard's own (under 1.2.840.10008, e.g. SOP classes) or the retainUids option is on:
  a UID attribute newer than the table's edition still gets a pseudonym.
- Private attributes and group lengths are removed (there is no safe-private list yet).
Finally the markers are added: Patient Identity Removed YES, De-identification Method and its
code sequence (CID 7050: the profile and each option), Longitudinal Temporal Information Modified.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from shared.deid.descriptors import clean as clean_text
from shared.deid.profile import EDITION, Profile
from shared.deid.pseudonyms import SETTING, Pseudonyms
from shared.uids import Identifier

DICOM_ROOT = "1.2.840.10008."
TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"}
DATE_VRS = {"DA", "DT", "TM"}
_NUMBER_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"}
_DUMMIES = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y", "IS": "0", "DS": "0",
            "AT": 0, **dict.fromkeys(_NUMBER_VRS, 0)}
_DUMMY_TEXT = "ANONYMIZED"
PATIENT_ID, PATIENT_NAME = 0x00100020, 0x00100010


class NotDeidentified(Exception):
    """This instance cannot be de-identified safely and is skipped; the message quotes nothing from the file.

    `patient_id`: the file's Patient ID when it was read that far, for the linkage table only.
    """

    def __init__(self, message: str, patient_id: str = ""):
        super().__init__(message)
        self.patient_id = patient_id


class KeyChanged(RuntimeError):
    """The de-identification key is not the one the export started with: its pseudonyms would not match."""


@dataclass
class _Instance:
    """What the rules need to know about the instance being processed."""

    patient: str
    offset: timedelta
    identifying: list[re.Pattern] = field(default_factory=list)


@dataclass(frozen=True)
class Deidentifier:
    """The profile with its options under one key."""

    profile: Profile
    pseudonyms: Pseudonyms

    def to_json(self) -> dict:
        """What the orchestration carries: the profile and a fingerprint of the key, never the key."""
        return {**self.profile.to_json(), "keyId": self.pseudonyms.key_id}

    @classmethod
    def from_json(cls, data: dict, env: Mapping[str, str] | None = None) -> Deidentifier:
        """The de-identifier of `to_json`, with the key from the settings; KeyChanged if it is another key."""
        pseudonyms = Pseudonyms.from_settings(env)
        if pseudonyms.key_id != data["keyId"]:
            raise KeyChanged(f"setting {SETTING} changed since this export started, so its pseudonyms would "
                             "not match those already exported: restore the key, or export again")
        return cls(Profile.from_json(data), pseudonyms)

    def identifier(self, identifier: Identifier) -> Identifier:
        """How `identifier` is shown in a de-identified export (errors.log, paths)."""
        return identifier if self.profile.has("retainUids") else self.pseudonyms.identifier(identifier)

    def header(self, ds: Dataset) -> _Instance:
        """De-identify `ds` (the data set before the pixel data) in place; the instance's context for `trailer`."""
        if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
            raise NotDeidentified("BurnedInAnnotation is YES: burned-in text cannot be removed from the pixels here")
        patient = str(ds.get("PatientID", "") or ds.get("PatientName", "") or "")
        instance = _Instance(patient, timedelta(days=self.pseudonyms.date_offset_days(patient)))
        if self.profile.cleans_text:  # gathering costs a decoded value per attribute: only when it is needed
            found: set[str] = set()
            self._collect(ds, found)
            instance.identifying = [re.compile(re.escape(v), re.IGNORECASE)
                                    for v in sorted(found, key=len, reverse=True)]
        self._process(ds, instance)
        self._mark(ds)
        return instance

    def trailer(self, ds: Dataset, instance: _Instance) -> None:
        """De-identify attributes found after the pixel data (rare: padding, signatures, private groups)."""
        self._process(ds, instance)

    def _action(self, element: DataElement) -> str:
        action = self.profile.action(element.tag)
        if action is None:
            return "U" if element.VR == "UI" and not self.profile.has("retainUids") else "K"
        return action

    def _collect(self, ds: Dataset, found: set[str]) -> None:
        """Every text value the profile takes away, to clean it out of the text it keeps."""
        for element in ds:
            if element.VR == "SQ":
                for item in element.value:
                    self._collect(item, found)
            elif element.VR in TEXT_VRS | DATE_VRS and self._action(element) not in ("K", "C"):
                for value in _values(element):
                    for part in re.split(r"[\^=]", str(value)):
                        if len(part.strip()) >= 2:
                            found.add(part.strip())

    def _process(self, ds: Dataset, instance: _Instance) -> None:
        for tag in list(ds.keys()):
            if tag.is_private or tag.element == 0 or self.profile.action(tag) == "X":
                del ds[tag]  # without decoding it
                continue
            element = ds[tag]
            action = self._action(element)
            if tag in (PATIENT_ID, PATIENT_NAME) and action in ("Z", "D"):
                element.value = self.pseudonyms.patient(instance.patient) if element.value else element.value
            elif action == "C" and element.VR not in TEXT_VRS | DATE_VRS | {"SQ"}:
                del ds[tag]
            elif action == "Z":
                element.value = Sequence() if element.VR == "SQ" else None
            elif action == "D":
                element.value = self._dummy(element)
            elif action == "U":
                self._replace_uids(ds, element)
            elif element.VR == "SQ":  # K or C: the items are processed in turn
                for item in element.value:
                    self._process(item, instance)
            elif action == "C":
                element.value = self._clean(element, instance)

    def _dummy(self, element: DataElement) -> object:
        if element.VR == "SQ":
            return Sequence([Dataset()])
        if element.VR == "UI":
            return [self.pseudonyms.uid(v) for v in _values(element)] or self.pseudonyms.uid("")
        if element.VR in _DUMMIES:
            return _DUMMIES[element.VR]
        return _DUMMY_TEXT if element.VR in TEXT_VRS else b"\0\0"

    def _replace_uids(self, ds: Dataset, element: DataElement) -> None:
        if element.VR != "UI":
            del ds[element.tag]
        else:
            element.value = [v if str(v).startswith(DICOM_ROOT) else self.pseudonyms.uid(str(v))
                             for v in _values(element)] or None

    def _clean(self, element: DataElement, instance: _Instance) -> object:
        if element.VR in DATE_VRS:
            return [_shifted(element.VR, str(v), instance.offset) for v in _values(element)] or None
        cleaned = (clean_text(str(value), instance.identifying) for value in _values(element))
        return [text for text in cleaned if text is not None] or None  # a value not cleaned with confidence goes

    def _mark(self, ds: Dataset) -> None:
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = [f"DICOM PS3.15 {EDITION} {self.profile.codes[0].meaning}"[:64]] + [
            code.meaning[:64] for code in self.profile.codes[1:]]
        items = []
        for code in self.profile.codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code.value, code.scheme_designator, \
                code.meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = (
            "MODIFIED" if self.profile.has("retainLongitudinalTemporalInformationModifiedDates")
            else "UNMODIFIED" if self.profile.has("retainLongitudinalTemporalInformationFullDates") else "REMOVED")


def _values(element: DataElement) -> list:
    value = element.value
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, MultiValue | list) else [value]


def _shifted(vr: str, value: str, offset: timedelta) -> str:
    """A DA or DT moved back by `offset`; TM unchanged (whole days); '' for what cannot be read."""
    value = value.strip()
    if vr == "TM":
        return value
    try:
        day = date(int(value[0:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return ""
    return (day - offset).strftime("%Y%m%d") + (value[8:] if vr == "DT" else "")
