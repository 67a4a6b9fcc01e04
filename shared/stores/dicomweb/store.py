"""A DICOMweb server (Orthanc, dcm4chee, Google Cloud Healthcare, the Azure DICOM service) as the store.

Listing is QIDO-RS, paged with `limit`/`offset`; the cursor is the offset reached (for the whole
store, the study's offset in `/studies` and the offset inside it), so a study of any size is listed a
bounded page per generation. A page shorter than asked is not taken as the end on its word: servers
cap results without saying so (Orthanc's `LimitFindInstances`/`LimitFindResults`), so the count the server reports
(Number of Study/Series Related Instances) decides; paging goes on from a capped page, and a listing
that ends short of that count fails loudly instead of exporting part of a study.

A query (`search_page`) is QIDO-RS at its level (`/studies`, `/series` or `/instances` with its filters),
paged the same way, and each matching study or series then listed as above; the cursor is
`<row offset>[:<offset inside it>]`. Every filtered attribute is asked back with `includefield` and
every row checked with `Query.selects`: a server that ignores a filter, or matches less strictly,
never widens the export (the rows dropped are counted). What servers read differently is sent in a
form they all read, wider where need be, and narrowed here: wildcards `*` `?` unescaped in the URL
(Orthanc reads `%2A` as a literal), and a person name's `^` and `=` as `?` (Orthanc matches no name
holding `^`, escaped or not). Kinds of matching a deployment's server gets wrong (`Query.kind`,
`DicomWebStore.untrusted`) are not sent at all and matched here alone.

Reading is WADO-RS with `transfer-syntax=*`, so each instance comes as stored (without it servers
transcode), parsed as a stream by `multipart.DicomPart`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import requests
from pydicom.datadict import tag_for_keyword

from shared.errors import Misconfigured
from shared.query import Attributes, Query, attributes_from_json
from shared.query.query import LEVEL_OF, LEVELS, vr_of
from shared.secrets import scrub
from shared.stores.dicomweb.multipart import DicomPart
from shared.stores.dicomweb.partitions import DEFAULT_PARTITION, partition_url
from shared.stores.dicomweb.session import dicomweb_session
from shared.stores.dicomweb.settings import PARTITIONS_SETTING, DicomWebSettings
from shared.stores.interface import (
    InstanceChangedOrGone,
    SearchPage,
    Store,
    StoredInstance,
    StoreError,
    StudyRange,
)
from shared.uids import Identifier, is_uid

DICOM_JSON = "application/dicom+json"
ACCEPT_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"
STUDY_INSTANCES, SERIES_INSTANCES = "00201208", "00201209"  # Number of Study/Series Related Instances
QIDO_LIMIT = 1000  # the most instances asked for in one QIDO request
STUDIES_PAGE = 100  # studies asked for at once when listing the whole store
TIMEOUT = (10, 120)  # seconds to connect, and to wait for each next byte
CHUNK = 1024 * 1024  # bytes read from the network at a time


LEVEL_PATHS = {"study": "studies", "series": "series", "instance": "instances"}


class DicomWebStore(Store):
    untrusted: frozenset[str] = frozenset()  # kinds of matching (Query.kind) never sent: matched here alone

    def __init__(self, url: str, session: requests.Session):
        self.url = url.rstrip("/")
        self.session = session

    @classmethod
    def from_settings(cls, env: Mapping[str, str] | None = None, partition: str | None = None) -> DicomWebStore:
        """The server the settings name; on a server with data partitions, `partition` of it (the default
        partition when None). Misconfigured when a partition is asked of a server without them."""
        config = DicomWebSettings.from_settings(env)
        if config.partitions:
            return cls(partition_url(config.url, partition or DEFAULT_PARTITION), dicomweb_session(config))
        if partition is not None:
            raise Misconfigured(f"the export reads data partition {partition!r}, but setting {PARTITIONS_SETTING} "
                                "is not true")
        return cls(config.url, dicomweb_session(config))

    def list_page(self, identifier: Identifier | None, cursor: str | None,
                  page_size: int) -> tuple[list[StoredInstance], str | None]:
        if identifier is None:
            return self._list_store(cursor, page_size)
        if identifier.instance:
            rows = self._qido(f"studies/{identifier.study}/series/{identifier.series}/instances",
                              SOPInstanceUID=identifier.instance)
            return _instances(rows), None
        return self._list_under(identifier, int(cursor or 0), page_size)

    def search_page(self, query: Query, cursor: str | None, page_size: int,
                    include: tuple[str, ...] = ()) -> SearchPage:
        row_text, _, inner_text = (cursor or "0").partition(":")
        offset, inner = int(row_text), inner_text or None
        fields = [*query.matches, *(k for k in include if k not in query.matches)]
        params: dict[str, Any] = {tag_of(k): _sent_value(k, v) for k, v in query.matches.items()
                                  if query.kind(k) not in self.untrusted}
        params.update(includefield=sorted({STUDY_UID, SERIES_UID, SOP_UID, STUDY_INSTANCES, SERIES_INSTANCES,
                                           *map(tag_of, fields)}), fuzzymatching="false")
        found: list[tuple[StoredInstance, Attributes]] = []
        dropped = 0
        parents: dict[tuple[str, ...], dict[str, list[str]]] = {}
        while True:
            limit = min(page_size - len(found), QIDO_LIMIT) if query.level == "instance" else STUDIES_PAGE
            rows = self._qido(LEVEL_PATHS[query.level], limit=limit, offset=offset, **params)
            if not rows:  # only an empty page ends it: a short one may be capped
                return SearchPage(found, None, dropped)
            for row in rows:
                attributes = self._with_parents(attributes_from_json(row), row, query.level, fields, parents)
                if not query.selects(attributes):
                    dropped += 1
                elif query.level == "instance":
                    found.extend((instance, attributes) for instance in _instances([row]))
                else:
                    identifier = _identifier(row, query.level)
                    if identifier is not None:
                        count = _value(row, STUDY_INSTANCES if query.level == "study" else SERIES_INSTANCES)
                        page, inner = self._list_under(identifier, int(inner or 0), page_size - len(found),
                                                       fields, attributes, _number(count))
                        found.extend(page)
                        if inner:
                            return SearchPage(found, f"{offset}:{inner}", dropped)
                offset += 1
                if len(found) >= page_size:
                    return SearchPage(found, str(offset), dropped)

    def _with_parents(self, attributes: dict[str, list[str]], row: Mapping[str, Any], level: str,
                      fields: list[str], cache: dict[tuple[str, ...], dict[str, list[str]]]) -> dict[str, list[str]]:
        """`attributes` with the study- and series-level `fields` the row lacks, read from its study's or series'
        own row (once per search page: `cache`). Servers return a parent's attributes on a child's row only in
        part (Orthanc: no ModalitiesInStudy on a series), and a row must be judged on all it is asked about."""
        for parent in LEVELS[: LEVELS.index(level)]:
            missing = [k for k in fields if LEVEL_OF[k] == parent and not attributes.get(k)]
            study, series = _value(row, STUDY_UID), _value(row, SERIES_UID)
            key = (study,) if parent == "study" else (study, series)
            if not missing or not all(map(is_uid, key)):
                continue
            if key not in cache:
                tags = sorted(tag_of(k) for k in fields if LEVEL_OF[k] == parent)
                found = self._qido("studies", StudyInstanceUID=study, includefield=tags) if parent == "study" else \
                    self._qido(f"studies/{study}/series", SeriesInstanceUID=series, includefield=tags)
                cache[key] = attributes_from_json(found[0]) if found else {}
            attributes = {**attributes, **{k: v for k, v in cache[key].items() if k in missing}}
        return attributes

    def open(self, instance: StoredInstance) -> DicomPart:
        what = f"WADO-RS of instance {instance.identifier}"
        path = f"studies/{instance.study}/series/{instance.series}/instances/{instance.instance}"
        response = self._get(path, {}, ACCEPT_DICOM, stream=True)
        if response.status_code in (404, 410):
            response.close()
            raise InstanceChangedOrGone(f"instance {instance.identifier} is not on the DICOMweb server "
                                        f"({response.status_code})")
        self._check(response, what)
        try:
            return DicomPart(response.headers.get("Content-Type", ""), self._body(response, what), what)
        except BaseException:
            response.close()
            raise

    def _list_under(self, identifier: Identifier, offset: int, page_size: int, fields: list[str] | None = None,
                    parent: Attributes | None = None, expected: int | None = None) -> Any:
        """One page of a study's or series' instances from `offset`, checked against the count reported
        (`expected`, when the caller already has it from the study's or series' own row).

        With `fields` (keywords), each instance comes with its attributes (`parent`'s, then its own row's)."""
        path = f"studies/{identifier.study}" + (f"/series/{identifier.series}" if identifier.series else "")
        limit = min(page_size, QIDO_LIMIT)
        rows = self._qido(f"{path}/instances", limit=limit, offset=offset,
                          includefield=sorted({STUDY_UID, SERIES_UID, SOP_UID, *map(tag_of, fields or [])}))
        page = _instances(rows) if fields is None else [
            (instance, {**(parent or {}), **attributes_from_json(row)})
            for row in rows for instance in _instances([row])]
        reached = offset + len(rows)
        if len(rows) == limit:
            return page, str(reached)
        expected = expected if expected is not None else self._count(identifier)
        if expected is None:  # no count to check against: only an empty page ends the listing
            return page, str(reached) if rows else None
        if reached >= expected:
            return page, None
        if rows:  # a capped page: go on from where it stopped
            return page, str(reached)
        raise StoreError(f"the DICOMweb server listed {reached} of the {expected} instances it reports for "
                         f"{identifier.level} {identifier}: it caps its query results (Orthanc: "
                         "LimitFindInstances, LimitFindResults), and the export will not copy part of it")

    def _count(self, identifier: Identifier) -> int | None:
        """The number of instances the server reports under a study or series (0 when it knows none)."""
        if identifier.series:
            rows = self._qido(f"studies/{identifier.study}/series", SeriesInstanceUID=identifier.series,
                              includefield=SERIES_INSTANCES)
            tag = SERIES_INSTANCES
        else:
            rows = self._qido("studies", StudyInstanceUID=identifier.study, includefield=STUDY_INSTANCES)
            tag = STUDY_INSTANCES
        return _number(_value(rows[0], tag)) if rows else 0

    def list_range(self, studies: StudyRange, cursor: str | None,
                   page_size: int) -> tuple[list[StoredInstance], str | None]:
        """The whole store's listing, with the instances listed only of the range's studies: QIDO-RS matches no
        range of UIDs, so each lane pages through every study row (one per study), but lists only its own."""
        return self._list_store(cursor, page_size, studies)

    def _list_store(self, cursor: str | None, page_size: int,
                    studies: StudyRange | None = None) -> tuple[list[StoredInstance], str | None]:
        """Every study in turn (QIDO /studies, paged), and in each its instances (of `studies` only, if given);
        the cursor is `<study offset>` or `<study offset>:<offset inside it>`."""
        study_text, _, inner_text = (cursor or "0").partition(":")
        study_offset, inner = int(study_text), inner_text or None
        found: list[StoredInstance] = []
        while True:
            rows = self._qido("studies", limit=STUDIES_PAGE, offset=study_offset, includefield=STUDY_UID)
            if not rows:  # only an empty page ends it: a short one may be capped
                return found, None
            for row in rows:
                study = _value(row, STUDY_UID)
                if is_uid(study) and (studies is None or studies.contains(study)):
                    page, inner = self._list_under(Identifier(study), int(inner or 0), page_size - len(found))
                    found.extend(page)
                    if inner:
                        return found, f"{study_offset}:{inner}"
                study_offset += 1
                if len(found) >= page_size:
                    return found, str(study_offset)

    def _qido(self, path: str, **params: Any) -> list[dict]:
        what = f"QIDO-RS {path}"
        response = self._get(path, params, DICOM_JSON)
        with response:
            self._check(response, what)
            if response.status_code == 204 or not response.content.strip():
                return []
            try:
                rows = response.json()
            except ValueError:
                raise StoreError(f"{what}: the reply is not DICOM JSON") from None
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise StoreError(f"{what}: the reply is not a list of DICOM JSON datasets")
        return rows

    def _get(self, path: str, params: Mapping[str, Any], accept: str, stream: bool = False) -> requests.Response:
        try:
            query = urlencode(params, doseq=True, safe="*?", quote_via=quote)  # wildcards as themselves
            return self.session.get(f"{self.url}/{path}", params=query, headers={"Accept": accept},
                                    timeout=TIMEOUT, stream=stream)
        except requests.RequestException as error:
            raise StoreError(f"the DICOMweb server at {self.url} is unreachable: {_reason(error)}") from None

    @staticmethod
    def _check(response: requests.Response, what: str) -> None:
        if response.status_code in (200, 204):
            return
        status = response.status_code
        response.close()
        refused = " (it refused the store's credentials: see DicomStore__Authentication)" if status in (401, 403) else ""
        raise StoreError(f"{what}: the DICOMweb server answered {status} {response.reason}{refused}", status)

    def _body(self, response: requests.Response, what: str):
        """The reply's bytes as they arrive; a connection lost on the way is a StoreError."""
        try:
            yield from response.iter_content(CHUNK)
        except requests.RequestException as error:
            raise StoreError(f"{what}: the reply was cut short: {_reason(error)}") from None
        finally:
            response.close()


def _instances(rows: list[dict]) -> list[StoredInstance]:
    """The instances of QIDO rows, each once, in order; rows without three valid UIDs cannot be exported."""
    found: dict[tuple[str, str, str], StoredInstance] = {}
    for row in rows:
        uids = (_value(row, STUDY_UID), _value(row, SERIES_UID), _value(row, SOP_UID))
        if all(map(is_uid, uids)):
            found.setdefault(uids, StoredInstance(*uids, size=None, etag=None))
    return list(found.values())


def _number(value: Any) -> int | None:
    """A count as the server wrote it (a number or its text), or None when it wrote none."""
    return int(value) if isinstance(value, int | float | str) and str(value).isdigit() else None


def _identifier(row: Mapping[str, Any], level: str) -> Identifier | None:
    """The study or series a QIDO row names (None without valid UIDs: nothing there can be exported)."""
    study, series = _value(row, STUDY_UID), _value(row, SERIES_UID)
    if not is_uid(study) or (level == "series" and not is_uid(series)):
        return None
    return Identifier(study, series if level == "series" else None)


def _sent_value(keyword: str, value: str) -> str:
    """The value as the server is asked it: a person name's component separators `^` `=` as the wildcard `?`
    (a wider match, narrowed by `Query.selects`)."""
    return value.replace("^", "?").replace("=", "?") if vr_of(keyword) == "PN" else value


def tag_of(keyword: str) -> str:
    """A keyword's tag as QIDO-RS writes it: eight hex digits."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ValueError(f"not a DICOM keyword: {keyword!r}")
    return f"{tag:08X}"


def _value(row: Mapping[str, Any], tag: str) -> Any:
    values = (row.get(tag) or {}).get("Value") or [None]
    return values[0]


def _reason(error: BaseException) -> str:
    return scrub(str(error).splitlines()[0] if str(error) else type(error).__name__)[:300]
