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

from shared.stores.dimse.associations import FIND, GET, Associations, Dropped, Lease
from shared.stores.dimse.settings import DimseSettings
from shared.stores.interface import InstanceChangedOrGone, Store, StoredInstance, StoreError
from shared.uids import Identifier, is_uid

CHUNK = 4 * 1024 * 1024  # bytes read from the received file at a time
PENDING = (0xFF00, 0xFF01)
CANCELED = 0xFE00
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
        after = tuple(cursor.split("/")) if cursor else None

        def page(lease: Lease) -> list[StoredInstance]:
            return list(islice(_Walk(lease, self.config).instances(identifier, after), page_size + 1))

        found = self._run(None, page)
        if len(found) <= page_size:
            return found, None
        found = found[:page_size]
        return found, found[-1].blob_name[: -len(".dcm")]

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

    def instances(self, identifier: Identifier | None, after: tuple[str, ...] | None) -> Iterator[StoredInstance]:
        """The instances under `identifier` (None: every study) in UID order, those up to `after` left out."""
        if identifier is not None and identifier.instance:
            yield from self._images(identifier.study, identifier.series or "", None, identifier.instance)
            return
        studies = [identifier.study] if identifier else sorted(self._uids("STUDY", {}, "StudyInstanceUID"))
        for study in studies:
            if after and study < after[0]:
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

    def exists(self, instance: StoredInstance) -> bool:
        return bool(self._find("IMAGE", {"StudyInstanceUID": instance.study, "SeriesInstanceUID": instance.series,
                                         "SOPInstanceUID": instance.instance}))

    def _series(self, study: str, only: str | None = None) -> list[tuple[str, int | None]]:
        """The study's series (or just `only`) with the instance count the PACS reports for each, in UID order;
        the whole study's list is checked against the study's own count."""
        rows = self._find("SERIES", {"StudyInstanceUID": study, "SeriesInstanceUID": only or "",
                                     "NumberOfSeriesRelatedInstances": ""})
        found = sorted({(r.SeriesInstanceUID, _count(r, "NumberOfSeriesRelatedInstances"))
                        for r in rows if is_uid(r.get("SeriesInstanceUID"))})
        if only is None and found and all(count is not None for _, count in found):
            studies = self._find("STUDY", {"StudyInstanceUID": study, "NumberOfStudyRelatedInstances": ""})
            expected = _count(studies[0], "NumberOfStudyRelatedInstances") if studies else None
            listed = sum(count or 0 for _, count in found)
            if expected is not None and listed < expected:
                raise self._capped(f"the series of study {study}", listed, expected)
        return found

    def _images(self, study: str, series: str, expected: int | None, sop: str = "") -> list[StoredInstance]:
        rows = self._find("IMAGE", {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": sop,
                                    "SOPClassUID": ""})
        found = sorted({(r.get("StudyInstanceUID") or study, r.get("SeriesInstanceUID") or series,
                         r.get("SOPInstanceUID"), r.get("SOPClassUID")) for r in rows})
        images = [StoredInstance(st, se, i, None, c or None) for st, se, i, c in found if all(map(is_uid, (st, se, i)))]
        if expected is not None and len(images) < expected:
            raise self._capped(f"series {study}/{series}", len(images), expected)
        return images

    def _uids(self, level: str, keys: dict[str, str], key: str) -> set[str]:
        return {r.get(key) for r in self._find(level, {**keys, key: ""}) if is_uid(r.get(key))}

    def _find(self, level: str, keys: dict[str, str]) -> list[Dataset]:
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


def _dataset(keys: Mapping[str, str]) -> Dataset:
    found = Dataset()
    for keyword, value in keys.items():
        setattr(found, keyword, value)
    return found


def _count(row: Dataset, keyword: str) -> int | None:
    value = row.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
