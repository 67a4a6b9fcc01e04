"""A PACS as the store: C-FIND (Study Root) to list, C-GET on the same association to read.

Listing walks down study → series → image, the levels every Query/Retrieve SCP must support, never
relying on relational or instance-level-only queries. The walk is in UID order and the cursor is
the last instance listed (`<study>/<series>/<sop>`), so the next page resumes right after it. The
PACS's own counts (Number of Study/Series Related Instances), where it returns them, check each
answer: a PACS that caps its C-FIND results fails the listing loudly instead of shortening the
export, whether it says so (Orthanc's `LimitFindResults`/`LimitFindInstances` end the answers with
status 0xFE00, Cancel) or not (fewer answers than its count). C-FIND cannot page, so nothing can be
listed past a cap. The list of every study (a whole-store export) has no count to check against.

Reading is one C-GET per instance at IMAGE level. The PACS sends it back as a C-STORE sub-operation
on the same association, in the transfer syntax it stores (see `associations`); pynetdicom writes it
as it arrives to a temporary file with File Meta built from the presentation context, and the
export streams that file. Only that file holds the instance: memory stays bounded.

A query (`search_page`) walks the same way: at each level down to the query's, one C-FIND with the query's
keys of that level (the study's or series' UID with them), each answer checked with `Query.selects` (an
ignored or loose key never widens the export); a study or series that matches is then listed whole, checked
against its counts as above. Its cursor is the last instance taken, as the listing's is.

The listing keeps each instance's SOP Class UID in its `etag` slot: the C-GET must propose that
class, and this spares a look-up per instance.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from typing import IO

from pydicom.dataset import Dataset
from pynetdicom.status import code_to_category

from shared.query import Query, attributes_from_dataset
from shared.query.query import LEVEL_OF, LEVELS, vr_of
from shared.stores.dimse.associations import FIND, GET, Associations, Dropped, Lease
from shared.stores.dimse.settings import DimseSettings
from shared.stores.interface import (
    InstanceChangedOrGone,
    SearchPage,
    Store,
    StoredInstance,
    StoreError,
    StudyRange,
)
from shared.uids import Identifier, is_uid

CHUNK = 4 * 1024 * 1024  # bytes read from the received file at a time
PENDING = (0xFF00, 0xFF01)
CANCELED = 0xFE00
Row = dict[str, list[str]]  # a C-FIND answer's attributes (with its parents'), as Query.selects reads them
Walked = tuple[tuple[str, ...], tuple[StoredInstance, Row] | None]  # a UID path and what it gives (None: dropped)
CAPPED = ("it caps its C-FIND results (Orthanc: LimitFindInstances, LimitFindResults), and the export will not "
          "copy part of it")


class DimseStore(Store):
    def __init__(self, config: DimseSettings, associations: Associations | None = None):
        self.config = config
        self.associations = associations or Associations(config)

    @classmethod
    def from_settings(cls, env: Mapping[str, str] | None = None) -> DimseStore:
        return cls(DimseSettings.from_settings(env))

    def list_page(self, identifier: Identifier | None, cursor: str | None,
                  page_size: int) -> tuple[list[StoredInstance], str | None]:
        return self._list(identifier, cursor, page_size)

    def list_range(self, studies: StudyRange, cursor: str | None,
                   page_size: int) -> tuple[list[StoredInstance], str | None]:
        """C-FIND matches no range of UIDs: each lane finds every study (one STUDY-level C-FIND per page) and walks
        down only its own."""
        return self._list(None, cursor, page_size, studies)

    def _list(self, identifier: Identifier | None, cursor: str | None, page_size: int,
              studies: StudyRange | None = None) -> tuple[list[StoredInstance], str | None]:
        after = tuple(cursor.split("/")) if cursor else None

        def page(lease: Lease) -> list[StoredInstance]:
            return list(islice(_Walk(lease, self.config).instances(identifier, after, studies), page_size + 1))

        found = self._run(None, page)
        if len(found) <= page_size:
            return found, None
        found = found[:page_size]
        return found, found[-1].blob_name[: -len(".dcm")]

    def search_page(self, query: Query, cursor: str | None, page_size: int,
                    include: tuple[str, ...] = ()) -> SearchPage:
        """C-FIND at each level down to the query's, with its keys of that level, then down to the instances
        (`_Walk.matches`); the cursor is the last instance taken, as the listing's is. Dropped rows are counted
        in the page that passes them: those before the cursor here, those after it in the next page."""
        after = tuple(cursor.split("/")) if cursor else None

        def page(lease: Lease) -> tuple[list[tuple[StoredInstance, Row]], list[tuple[str, ...]]]:
            taken: list[tuple[StoredInstance, Row]] = []
            drops: list[tuple[str, ...]] = []
            for path, found in _Walk(lease, self.config).matches(query, include, after):
                if found is None:
                    drops.append(path)
                    continue
                taken.append(found)
                if len(taken) > page_size:
                    break
            return taken, drops

        taken, drops = self._run(None, page)
        if len(taken) <= page_size:
            return SearchPage(list(taken), None, len(drops))
        taken = taken[:page_size]
        last = taken[-1][0]
        end = (last.study, last.series, last.instance)
        return SearchPage(list(taken), "/".join(end), sum(1 for path in drops if path < end))

    def open(self, instance: StoredInstance) -> _Received:
        keys = {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": instance.study,
                "SeriesInstanceUID": instance.series, "SOPInstanceUID": instance.instance}
        what = f"C-GET of instance {instance.identifier}"

        def get(lease: Lease) -> IO[bytes]:
            lease.expected = instance.instance
            final = Dataset()
            try:
                responses = lease.association.send_c_get(_dataset(keys), GET)
            except ValueError as error:  # no accepted context for C-GET or for the instance's class
                raise StoreError(f"{what}: the PACS at {self.config.address} accepted no presentation context for "
                                 f"it ({error}): it must allow C-GET and the instance's storage SOP class") from None
            for status, _ in responses:
                if "Status" not in status:
                    raise Dropped(f"{what}: the association with the PACS at {self.config.address} ended "
                                  f"(aborted, or silent for {self.config.timeout:g} s)")
                final = status
            received = lease.take()
            failed = int(final.get("NumberOfFailedSuboperations") or 0)
            if received is not None and not failed and code_to_category(final.Status) in ("Success", "Warning"):
                return received
            if received is not None:
                received.close()
            if not failed and not _Walk(lease, self.config).exists(instance):  # PACS differ in how they say it
                raise InstanceChangedOrGone(f"instance {instance.identifier} is not in the PACS")
            raise StoreError(f"{what}: the PACS answered status 0x{final.Status:04X} with {failed} failed "
                             "sub-operation(s)")

        return _Received(self._run(instance.etag, get))

    def close(self) -> None:
        self.associations.close()

    def _run[T](self, sop_class: str | None, operation: Callable[[Lease], T]) -> T:
        """`operation` on a leased association; once more on a fresh one if a reused one turns out dead."""
        for attempt in (1, 2):
            with self.associations.lease(sop_class) as lease:
                try:
                    return operation(lease)
                except Dropped:
                    if not lease.reused or attempt == 2:
                        raise
        raise AssertionError("unreachable")


class _Walk:
    """The C-FINDs of one listing, on one association."""

    def __init__(self, lease: Lease, config: DimseSettings):
        self.lease, self.config = lease, config

    def instances(self, identifier: Identifier | None, after: tuple[str, ...] | None,
                  within: StudyRange | None = None) -> Iterator[StoredInstance]:
        """The instances under `identifier` (None: every study, or those `within` a range) in UID order, those up to
        `after` left out."""
        if identifier is not None and identifier.instance:
            yield from self._images(identifier.study, identifier.series or "", None, identifier.instance)
            return
        studies = [identifier.study] if identifier else sorted(self._uids("STUDY", {}, "StudyInstanceUID"))
        for study in studies:
            if (after and study < after[0]) or (within and not within.contains(study)):
                continue
            if identifier is not None and identifier.series:
                series_counts = self._series(study, identifier.series)
            else:
                series_counts = self._series(study)
            for series, count in series_counts:
                if after and (study, series) < after[:2]:
                    continue
                for found in self._images(study, series, count):
                    if not after or (found.study, found.series, found.instance) > after:
                        yield found

    def matches(self, query: Query, include: tuple[str, ...], after: tuple[str, ...] | None) -> Iterator[Walked]:
        """What `query` selects, walked as `instances` walks (study → series → image, UID order), each C-FIND
        with the query's keys of its level and `include`'s to return; each instance with its rows' attributes.

        Every row down to the query's level is checked with the query's keys of the levels so far
        (`Query.selects`); a row left out is yielded as its UID path alone. Below the query's level a study or
        series is taken whole, its answers checked against its counts as the listing checks them. Rows up to
        `after` (a cursor's UID path) are passed over."""
        depth = LEVELS.index(query.level)
        keys = [_keys(query, include, level) for level in LEVELS]
        checks = [Query({k: v for k, v in query.matches.items() if LEVELS.index(LEVEL_OF[k]) <= n}) for n in range(3)]

        def later(path: tuple[str, ...]) -> bool:
            return not after or path > after[: len(path)]

        studies = self._find("STUDY", {"StudyInstanceUID": "", **keys[0]})
        for study, study_row in sorted({r.StudyInstanceUID: r for r in studies
                                        if is_uid(r.get("StudyInstanceUID"))}.items()):
            if after and study < after[0]:
                continue
            study_attributes = _attributes(study_row)
            if not checks[0].selects(study_attributes):
                if later((study,)):
                    yield (study,), None
                continue
            for series_row in self._series_rows(study, keys[1], whole=depth == 0):
                series = series_row.SeriesInstanceUID
                if after and (study, series) < after[:2]:
                    continue
                series_attributes = {**study_attributes, **_attributes(series_row)}
                if depth >= 1 and not checks[1].selects(series_attributes):
                    if later((study, series)):
                        yield (study, series), None
                    continue
                count = _count(series_row, "NumberOfSeriesRelatedInstances") if depth <= 1 else None
                for image, image_row in self._image_rows(study, series, count, keys[2]):
                    path = (study, series, image.instance)
                    if not later(path):
                        continue
                    attributes = {**series_attributes, **_attributes(image_row)}
                    yield path, ((image, attributes) if depth < 2 or query.selects(attributes) else None)

    def exists(self, instance: StoredInstance) -> bool:
        return bool(self._find("IMAGE", {"StudyInstanceUID": instance.study, "SeriesInstanceUID": instance.series,
                                         "SOPInstanceUID": instance.instance}))

    def _series(self, study: str, only: str | None = None) -> list[tuple[str, int | None]]:
        """The study's series (or just `only`) with the instance count the PACS reports for each, in UID order;
        the whole study's list is checked against the study's own count."""
        rows = self._series_rows(study, {"SeriesInstanceUID": only} if only else {}, whole=only is None)
        return [(row.SeriesInstanceUID, _count(row, "NumberOfSeriesRelatedInstances")) for row in rows]

    def _series_rows(self, study: str, keys: Mapping[str, object], whole: bool) -> list[Dataset]:
        """The study's series rows matching `keys` (more keys to return: empty values), one per UID in UID order;
        `whole` (no filter among `keys`): the counts are checked against the study's own count."""
        rows = self._find("SERIES", {"StudyInstanceUID": study, "SeriesInstanceUID": "",
                                     "NumberOfSeriesRelatedInstances": "", **keys})
        found = sorted({r.SeriesInstanceUID: r for r in rows if is_uid(r.get("SeriesInstanceUID"))}.items())
        counts = [_count(row, "NumberOfSeriesRelatedInstances") for _, row in found]
        if whole and found and all(count is not None for count in counts):
            studies = self._find("STUDY", {"StudyInstanceUID": study, "NumberOfStudyRelatedInstances": ""})
            expected = _count(studies[0], "NumberOfStudyRelatedInstances") if studies else None
            listed = sum(count or 0 for count in counts)
            if expected is not None and listed < expected:
                raise self._capped(f"the series of study {study}", listed, expected)
        return [row for _, row in found]

    def _images(self, study: str, series: str, expected: int | None, sop: str = "") -> list[StoredInstance]:
        return [image for image, _ in self._image_rows(study, series, expected, {"SOPInstanceUID": sop})]

    def _image_rows(self, study: str, series: str, expected: int | None,
                    keys: Mapping[str, object]) -> list[tuple[StoredInstance, Dataset]]:
        """The series' instances matching `keys`, with their rows, in UID order; checked against `expected`, the
        series' count (None: nothing to check, as when `keys` filter)."""
        rows = self._find("IMAGE", {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": "",
                                    "SOPClassUID": "", **keys})
        found: dict[tuple[str, str, str], tuple[StoredInstance, Dataset]] = {}
        for r in rows:
            st, se, i = r.get("StudyInstanceUID") or study, r.get("SeriesInstanceUID") or series, r.get("SOPInstanceUID")
            if all(map(is_uid, (st, se, i))):
                found[(st, se, i)] = (StoredInstance(st, se, i, None, r.get("SOPClassUID") or None), r)
        images = [found[path] for path in sorted(found)]
        if expected is not None and len(images) < expected:
            raise self._capped(f"series {study}/{series}", len(images), expected)
        return images

    def _uids(self, level: str, keys: dict[str, str], key: str) -> set[str]:
        return {r.get(key) for r in self._find(level, {**keys, key: ""}) if is_uid(r.get(key))}

    def _find(self, level: str, keys: Mapping[str, object]) -> list[Dataset]:
        """The C-FIND answers at `level` matching `keys`; StoreError if the PACS fails or refuses it."""
        what = f"C-FIND at {level} level"
        try:
            responses = self.lease.association.send_c_find(_dataset({"QueryRetrieveLevel": level, **keys}), FIND)
        except ValueError as error:
            raise StoreError(f"{what}: the PACS at {self.config.address} accepted no presentation context for "
                             f"Study Root C-FIND ({error}): it must allow C-FIND for the calling AE") from None
        rows = []
        for status, identifier in responses:
            if "Status" not in status:
                raise Dropped(f"{what}: the association with the PACS at {self.config.address} ended "
                              f"(aborted, or silent for {self.config.timeout:g} s)")
            if status.Status in PENDING:
                if identifier is not None:
                    rows.append(identifier)
            elif status.Status == CANCELED:  # what Orthanc answers when it stops at its limit
                raise StoreError(f"{what}: the PACS at {self.config.address} stopped after {len(rows)} answers "
                                 f"(status 0x{CANCELED:04X}): {CAPPED}")
            elif status.Status != 0x0000:
                raise StoreError(f"{what}: the PACS at {self.config.address} answered status 0x{status.Status:04X}")
        return rows

    def _capped(self, what: str, listed: int, expected: int) -> StoreError:
        return StoreError(f"the PACS at {self.config.address} listed {listed} of the {expected} instances it reports "
                          f"for {what}: {CAPPED}")


class _Received:
    """A received instance: the temporary file pynetdicom wrote, already unlinked, read a block at a time."""

    def __init__(self, file: IO[bytes]):
        self._file = file
        self.size: int | None = os.fstat(file.fileno()).st_size

    def chunks(self) -> Iterator[bytes]:
        with self._file:
            while block := self._file.read(CHUNK):
                yield block


def _dataset(keys: Mapping[str, object]) -> Dataset:
    found = Dataset()
    for keyword, value in keys.items():
        setattr(found, keyword, value)
    return found


def _keys(query: Query, include: tuple[str, ...], level: str) -> dict[str, object]:
    """The C-FIND keys of `level` for `query`: its matches there (a UID list as several values, QIDO-RS's
    `a,b` being C-FIND's `a\\b`; ranges and wildcards are the same in both), and `include`'s keys to return."""
    keys: dict[str, object] = {k: "" for k in include if LEVEL_OF.get(k) == level}
    for keyword, value in query.matches.items():
        if LEVEL_OF[keyword] == level:
            keys[keyword] = [uid.strip() for uid in value.split(",")] if vr_of(keyword) == "UI" else value
    return keys


def _attributes(row: Dataset) -> Row:
    """The row's attributes that have a value (an empty return key never hides a parent's value)."""
    return {keyword: values for keyword, values in attributes_from_dataset(row).items() if values}


def _count(row: Dataset, keyword: str) -> int | None:
    value = row.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
