"""The query itself: parsing and validating one, its level, and matching a store's row against it.

Matching follows PS3.4 C.2.2.2 as QIDO-RS asks it (PS3.18 §8.3.4, `fuzzymatching=false`):
- single value: exact and case-sensitive, except person names (PN), matched without regard to case
  (the standard leaves PN case to the server; one rule here makes every store select alike);
  `^` and `=` in a name are plain characters of the name's encoding;
- wildcards `*` (any run, also none) and `?` (one character) on text VRs; `*` alone matches anything;
- ranges `A-B`, `A-`, `-B` on dates, times and date-times, ends included;
- UID lists `a,b,c` on UIDs;
- a multi-valued attribute (ModalitiesInStudy) matches when one of its values does;
- a row without the attribute (or with it empty) matches only `*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from shared.uids import uid_problem

LEVELS = ("study", "series", "instance")

# The attributes a query may match, by level: those QIDO-RS requires a server to match (PS3.18 Table
# 10.6.1-5 and its series and instance neighbours) and the common ones servers index beside them.
MATCHABLE: dict[str, tuple[str, ...]] = {
    "study": ("StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
              "ReferringPhysicianName", "PatientName", "PatientID", "IssuerOfPatientID", "StudyID",
              "PatientBirthDate", "PatientSex", "StudyDescription", "InstitutionName"),
    "series": ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription", "BodyPartExamined",
               "SeriesDate", "SeriesTime", "ProtocolName", "Manufacturer", "StationName",
               "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime"),
    "instance": ("SOPInstanceUID", "SOPClassUID", "InstanceNumber", "AcquisitionNumber", "ContentDate",
                 "ContentTime", "InstanceCreationDate", "InstanceCreationTime", "NumberOfFrames"),
}
LEVEL_OF = {keyword: level for level, keywords in MATCHABLE.items() for keyword in keywords}
_BY_LOWER = {keyword.lower(): keyword for keyword in LEVEL_OF}
TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}  # wildcards allowed
RANGE_VRS = {"DA", "TM", "DT"}
NUMBER_VRS = {"IS", "DS", "US", "UL", "SS", "SL"}
_DATE = re.compile(r"\d{8}")
_TIME = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_DATETIME = re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?")
_CS = re.compile(r"[A-Z0-9 _*?]+")
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
MAX_VALUE = 1024  # characters in one match value (64 UIDs of 15 fit)

Attributes = Mapping[str, list[str]]  # keyword -> the row's values as text (a person name: its alphabetic form)


class QueryError(ValueError):
    """A query that cannot be run; `key` is the attribute at fault (None: the query as a whole)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Query:
    """One search: `matches` maps attribute keywords to QIDO-RS match values; `level` is the deepest level of
    its attributes: a study query selects whole studies, a series query series, an instance query instances."""

    matches: dict[str, str] = field(default_factory=dict)

    @property
    def level(self) -> str:
        return max((LEVEL_OF[keyword] for keyword in self.matches), key=LEVELS.index, default="study")

    def kind(self, keyword: str) -> str:
        """How `keyword` is matched: `uids`, `range`, `wildcard` or `exact`."""
        value, vr = self.matches[keyword], vr_of(keyword)
        if vr == "UI":
            return "uids" if "," in value else "exact"
        if vr in RANGE_VRS and "-" in value:
            return "range"
        return "wildcard" if vr in TEXT_VRS and ("*" in value or "?" in value) else "exact"

    def selects(self, attributes: Attributes) -> bool:
        """Whether a store's row (study, series or instance, with its parents' attributes) matches every key."""
        return all(matches_value(vr_of(k), v, attributes.get(k) or []) for k, v in self.matches.items())

    def to_json(self) -> dict[str, str]:
        return dict(self.matches)

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> Query:
        return cls(dict(data))

    def __str__(self) -> str:
        return "&".join(f"{k}={v}" for k, v in self.matches.items())


def parse_query(document: Any) -> Query:
    """The query in `document` (a JSON object of keyword or tag -> value), or QueryError naming the key."""
    if not isinstance(document, dict):
        raise QueryError("must be an object of attribute keywords (or tags) and match values")
    if not document:
        raise QueryError("is empty; give at least one attribute to match (for every instance, leave out source)")
    matches: dict[str, str] = {}
    for key, value in document.items():
        keyword = _keyword(key)
        if keyword in matches:
            raise QueryError(f"names {keyword} twice", key)
        if not isinstance(value, str):
            raise QueryError(f"must be a string, not {type(value).__name__}", key)
        problem = value_problem(vr_of(keyword), value)
        if problem:
            raise QueryError(f"{value[:100]!r}: {problem}", key)
        matches[keyword] = value
    return Query(matches)


def _keyword(key: Any) -> str:
    """The keyword of a key given as keyword (any case) or eight-digit hex tag; QueryError if none fits."""
    text = str(key).strip()
    keyword = None
    if re.fullmatch(r"[0-9A-Fa-f]{8}", text):
        keyword = keyword_for_tag(int(text, 16)) or None
    elif text.lower() in _BY_LOWER:
        keyword = _BY_LOWER[text.lower()]
    elif tag_for_keyword(text) is not None:
        keyword = text
    if keyword is None:
        raise QueryError("is not a DICOM attribute keyword or tag", str(key))
    if keyword not in LEVEL_OF:
        raise QueryError(f"{keyword} cannot be matched at any level; the attributes a query may match are: "
                         f"{', '.join(LEVEL_OF)}", str(key))
    return keyword


def vr_of(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return dictionary_VR(tag) if tag is not None else "UN"


def value_problem(vr: str, value: str) -> str | None:
    """Why `value` cannot match an attribute of `vr` (None when it can)."""
    if not value.strip():
        return "is empty; give a value to match (or '*' for anything)"
    if len(value) > MAX_VALUE:
        return f"is {len(value)} characters long; at most {MAX_VALUE}"
    if any(ord(c) < 32 for c in value) or "\\" in value:
        return "holds a control character or a backslash"
    if vr == "UI":
        for uid in value.split(","):
            problem = uid_problem(uid.strip())
            if problem:
                return f"the UID {uid.strip()[:70]!r} {problem} (UIDs match exactly, or as a list a,b)"
        return None
    if vr in RANGE_VRS:
        low, dash, high = value.partition("-") if vr != "DT" else _split_datetime_range(value)
        if dash and not (low or high):
            return "a range needs at least one end"
        for end in (low, high) if dash else (value,):
            if end and not _valid_moment(vr, end):
                shape = {"DA": "YYYYMMDD", "TM": "HH[MM[SS[.FFFFFF]]]", "DT": "YYYY[MM[DD[HH[MM[SS[.F]]]]]]"}[vr]
                return f"is not a {shape} value or a range A-B of them (open ends allowed)"
        return None
    if vr in NUMBER_VRS:
        pattern = _INTEGER if vr != "DS" else _DECIMAL
        return None if pattern.fullmatch(value.strip()) else "is not a number (numbers match exactly)"
    if vr == "CS" and not _CS.fullmatch(value):
        return "a code string holds only capitals, digits, spaces and underscores (and * ? wildcards)"
    return None


def _split_datetime_range(value: str) -> tuple[str, str, str]:
    """A DT range's ends: the first `-` with a date-time (or nothing) on each side; a `-` of a time zone
    offset is not it. ("20230101-0500" reads as a range: the standard's own ambiguity.)"""
    for at, char in enumerate(value):
        low, high = value[:at], value[at + 1:]
        if char == "-" and (low or high) and all(not end or _DATETIME.fullmatch(end) for end in (low, high)):
            return low, "-", high
    return value, "", ""


def _valid_moment(vr: str, text: str) -> bool:
    if vr == "DA":
        return bool(_DATE.fullmatch(text)) and _parses(text, "%Y%m%d")
    if vr == "TM":
        return bool(_TIME.fullmatch(text)) and int(text[:2]) < 24 and int(text[2:4] or 0) < 60 \
            and int(text[4:6] or 0) < 60
    return bool(_DATETIME.fullmatch(text)) and (len(text) < 8 or _parses(text[:8], "%Y%m%d"))


def _parses(text: str, shape: str) -> bool:
    try:
        datetime.strptime(text, shape)
    except ValueError:
        return False
    return True


def matches_value(vr: str, pattern: str, values: Iterable[str]) -> bool:
    """Whether one of an attribute's `values` matches the QIDO-RS `pattern` (see the module's rules)."""
    if pattern.strip("*") == "" and vr in TEXT_VRS:
        return True
    present = [str(v).strip() for v in values if v is not None and str(v).strip()]
    if vr == "UI":
        wanted = {uid.strip() for uid in pattern.split(",")}
        return any(v in wanted for v in present)
    if vr in RANGE_VRS:
        low, dash, high = pattern.partition("-") if vr != "DT" else _split_datetime_range(pattern)
        if not dash:
            return any(_moment(vr, v) == _moment(vr, pattern) for v in present)
        return any((not low or _moment(vr, low) <= _moment(vr, v)) and (not high or _moment(vr, v) <= _moment(vr, high))
                   for v in present)
    if vr in NUMBER_VRS:
        return any(_number(v) == _number(pattern) for v in present)
    flags = re.IGNORECASE if vr == "PN" else 0
    if "*" in pattern or "?" in pattern:
        regex = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.strip()),
                           flags | re.DOTALL)
        return any(regex.fullmatch(v) for v in present)
    if vr == "PN":
        return any(v.casefold() == pattern.strip().casefold() for v in present)
    return any(v == pattern.strip() for v in present)


def _moment(vr: str, text: str) -> str:
    """A date, time or date-time as text that sorts in time order (time zones are ignored)."""
    text = text.strip().replace("-", "").replace(":", "") if vr != "DT" else re.sub(r"[+-]\d{4}$", "", text.strip())
    whole, _, fraction = text.partition(".")
    width = {"DA": 8, "TM": 6, "DT": 14}[vr]
    return whole.ljust(width, "0")[:width] + "." + fraction.ljust(6, "0")[:6]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def attributes_from_json(row: Mapping[str, Any]) -> dict[str, list[str]]:
    """A DICOM JSON dataset (a QIDO-RS row) as Attributes, keyed by keyword."""
    found: dict[str, list[str]] = {}
    for tag, element in row.items():
        try:
            keyword = keyword_for_tag(int(tag, 16))
        except (TypeError, ValueError):
            continue
        if keyword and isinstance(element, dict):
            found[keyword] = [_text(v) for v in element.get("Value") or [] if v is not None]
    return found


def _text(value: Any) -> str:
    if isinstance(value, dict):  # a person name: its alphabetic form, else another
        return str(value.get("Alphabetic") or value.get("Ideographic") or value.get("Phonetic") or "")
    return str(value)


def attributes_from_dataset(dataset: Any) -> dict[str, list[str]]:
    """A pydicom Dataset (a C-FIND response, a stored file's header) as Attributes, keyed by keyword."""
    found: dict[str, list[str]] = {}
    for element in dataset:
        if element.keyword and element.VR != "SQ" and element.value is not None:
            value = element.value
            values = list(value) if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else [value]
            found[element.keyword] = [str(v) for v in values if v is not None and str(v) != ""]
    return found
