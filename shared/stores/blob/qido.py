"""QIDO-RS on the built-in store (PS3.18 §10.6): `GET /studies`, `/studies/{s}/series`, `.../series/{x}/instances`.

Answered from the same listing and index as the export's query (shared/stores/blob/search.py), so a search
and an export by the same query select the same. Parameters: any matchable attribute (keyword or tag) with a
QIDO-RS value, `limit` (1 to 1000, default 100), `offset`, `includefield` (keywords or tags, comma-separated
or repeated, or `all`) and `fuzzymatching` (`true` is accepted and matched exactly: the store has no fuzzy
matching). An attribute deeper than the route's level (Modality on `/studies`) is refused: ask the deeper
route. Rows come in the store's name order; each holds the level's usual attributes (PS3.18 Table
6.7.1-2 and its neighbours), the matched ones and those included, where the store has them.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from shared.errors import ClientError
from shared.query import Query, QueryError, parse_query
from shared.query.query import LEVEL_OF, LEVELS
from shared.stores.blob.search import READERS, described, select, studies, unit_of
from shared.stores.blob.store import DicomStore

MAX_LIMIT, DEFAULT_LIMIT = 1000, 100
RETURNED = {
    "study": ("StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
              "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
              "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
    "series": ("StudyInstanceUID", "Modality", "SeriesDescription", "SeriesInstanceUID", "SeriesNumber",
               "BodyPartExamined", "NumberOfSeriesRelatedInstances"),
    "instance": ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID", "InstanceNumber",
                 "NumberOfFrames"),
}
NUMBERS = {"IS", "SL", "SS", "UL", "US"}


def search(store: DicomStore, level: str, params: Iterable[tuple[str, str]], study: str | None = None,
           series: str | None = None) -> list[dict[str, Any]]:
    """The DICOM JSON rows of the studies, series or instances (`level`) under `study`/`series` that match."""
    query, limit, offset, include = _parse(level, params)
    prefix = f"{study}/{series}/" if series else f"{study}/" if study else None
    found: list[dict[str, Any]] = []
    with ThreadPoolExecutor(READERS) as pool:
        for group in studies(store.container, prefix=prefix):
            seen: set[str] = set()
            for instance, row in select(query, described(store.container, pool, group), level):
                unit = unit_of(instance, level)
                if unit in seen:
                    continue
                seen.add(unit)
                if offset:
                    offset -= 1
                    continue
                found.append(_dicom_json(row, (*RETURNED[level], *query.matches, *include)))
                if len(found) >= limit:
                    return found
    return found


def _parse(level: str, params: Iterable[tuple[str, str]]) -> tuple[Query, int, int, tuple[str, ...]]:
    matches: dict[str, str] = {}
    limit, offset, include = DEFAULT_LIMIT, 0, []
    for name, value in params:
        key = name.strip().lower()
        if key == "limit":
            limit = _whole(name, value, 1, MAX_LIMIT)
        elif key == "offset":
            offset = _whole(name, value, 0, 10**9)
        elif key == "includefield":
            include += _included(value)
        elif key == "fuzzymatching":
            if value.strip().lower() not in ("true", "false"):
                raise ClientError(400, f"parameter '{name}' must be true or false", name)
        elif key in ("code",):  # the function key, when given in the URL
            continue
        elif name in matches:
            raise ClientError(400, f"parameter '{name[:100]}' is given twice", name[:100])
        else:
            matches[name] = value
    try:
        query = parse_query(matches) if matches else Query({})
    except QueryError as error:
        raise ClientError(400, f"parameter '{(error.key or '')[:100]}': {error}", error.key) from None
    deeper = [k for k in query.matches if LEVELS.index(LEVEL_OF[k]) > LEVELS.index(level)]
    if deeper:
        raise ClientError(400, f"parameter '{deeper[0]}' is a {LEVEL_OF[deeper[0]]}-level attribute; a {level} "
                          "search cannot match it (search the deeper route)", deeper[0])
    return query, limit, offset, tuple(include)


def _whole(name: str, value: str, low: int, high: int) -> int:
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise ClientError(400, f"parameter '{name}' must be a whole number from {low} to {high}", name)
    return int(value)


def _included(value: str) -> list[str]:
    """The keywords an includefield value names (`all`: every one the store holds)."""
    found = []
    for part in (p.strip() for p in value.split(",")):
        if part.lower() == "all":
            found += list(LEVEL_OF)
            continue
        keyword = keyword_for_tag(int(part, 16)) if len(part) == 8 and _hex(part) else part
        if not keyword or tag_for_keyword(keyword) is None:
            raise ClientError(
                400, f"parameter 'includefield': {part[:100]!r} is not a DICOM attribute keyword or tag", "includefield")
        found.append(keyword)
    return found


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _dicom_json(row: dict[str, list[str]], keywords: Iterable[str]) -> dict[str, Any]:
    """The attributes named, as DICOM JSON (PS3.18 Annex F); an attribute the row lacks goes without a value."""
    dataset: dict[str, Any] = {}
    for keyword in dict.fromkeys(keywords):
        tag = tag_for_keyword(keyword)
        if tag is None:
            continue
        vr = dictionary_VR(tag)
        element: dict[str, Any] = {"vr": vr}
        values = [v for v in row.get(keyword) or [] if v != ""]
        if values:
            element["Value"] = [_json_value(vr, v) for v in values]
        dataset[f"{tag:08X}"] = element
    return dataset


def _json_value(vr: str, value: str) -> Any:
    if vr == "PN":
        return {"Alphabetic": value}
    try:
        return int(value) if vr in NUMBERS else float(value) if vr in ("DS", "FL", "FD") else value
    except ValueError:
        return value
