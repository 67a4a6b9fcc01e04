"""What the export needs of a DICOM store, whichever it is: a page of instances, and one instance's bytes.

Three stores implement it: the built-in blob store (`shared.stores.blob`), any DICOMweb server
(`shared.stores.dicomweb`) and a PACS over DIMSE (`shared.stores.dimse`); `shared.stores.factory.open_store` picks one from the app settings.
Expand and copy see only this interface, so a new kind of store is one more package here.

    >>> page, cursor = store.list_page(Identifier("1.2"), None, 100)  # identifier None: the whole store
    >>> found = store.search_page(parse_query({"Modality": "MR"}), None, 100)  # found.instances, .cursor, .dropped
    >>> opened = store.open(page[0])                                   # opened.size: None if unknown
    >>> data = b"".join(opened.chunks())
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from shared.errors import Skipped, Unavailable
from shared.query import Attributes, Query
from shared.uids import Identifier, is_uid


class StoreError(Unavailable):
    """Reading the store failed for a reason that is not the instance's (outage, refused credentials, a cut
    reply): the batch fails and is retried. `status_code` is the server's HTTP status, when it answered."""


class InstanceChangedOrGone(Skipped):
    """The instance is not in the store, or no longer the version (etag) that was listed."""


@dataclass(frozen=True)
class StoredInstance:
    """One instance as the listing saw it; `etag` is the store's own token for it, handed back to `open`: the
    version an export will read where the store has versions (a PACS keeps the SOP Class UID there, which its
    retrieval must propose), and `size` is known where the listing tells it."""

    study: str
    series: str
    instance: str
    size: int | None
    etag: str | None

    @property
    def blob_name(self) -> str:
        """`<study>/<series>/<sop>.dcm`: the instance's path in the blob store and under an export's results."""
        return blob_name(self.study, self.series, self.instance)

    @property
    def identifier(self) -> Identifier:
        return Identifier(self.study, self.series, self.instance)


def blob_name(study: str, series: str, instance: str) -> str:
    """The path of one instance; refuses anything that is not three valid UIDs."""
    for uid in (study, series, instance):
        if not is_uid(uid):
            raise ValueError(f"not a valid UID: {uid!r}")
    return f"{study}/{series}/{instance}.dcm"


def parse_blob_name(name: str) -> tuple[str, str, str] | None:
    """(study, series, instance) of an instance path, or None for a name outside the layout."""
    parts = name.split("/")
    if len(parts) != 3 or not parts[2].endswith(".dcm"):
        return None
    study, series, instance = parts[0], parts[1], parts[2][: -len(".dcm")]
    return (study, series, instance) if all(map(is_uid, (study, series, instance))) else None


@dataclass(frozen=True)
class StudyRange:
    """The studies whose key (`study_key`) is from `low` (None: the first) up to, not including, `high` (None: past
    the last): one lane's part of a whole store (shared/export/lanes.py). Keys order studies as a blob listing
    orders their instances, so a listing in name order leaves a range once it passes `high`."""

    low: str | None = None
    high: str | None = None

    def place(self, study: str) -> int:
        """-1: the study comes before the range, 0: inside it, 1: after it."""
        key = study_key(study)
        if self.low is not None and key < study_key(self.low):
            return -1
        return 1 if self.high is not None and key >= study_key(self.high) else 0

    def contains(self, study: str) -> bool:
        return self.place(study) == 0

    @property
    def prefix(self) -> str:
        """What every instance name inside the range starts with: the bounds' common beginning."""
        if self.low is None or self.high is None:
            return ""
        low, high = study_key(self.low), study_key(self.high)
        common = next((n for n, (a, b) in enumerate(zip(low, high)) if a != b), min(len(low), len(high)))
        return low[:common]


def study_key(study: str) -> str:
    """`<study>/`: the order of instance names (`1.2.3.4/…` before `1.2.3/…`, as `.` sorts before `/`)."""
    return f"{study}/"


@dataclass(frozen=True)
class SearchPage:
    """One page of a query's results.

    `instances`: the instances of the studies, series or instances (the query's level) that match, each
    with the attributes its row (and its parents' rows) returned, among them every attribute in the search's
    `include`; `cursor`: where the next page starts (None at the end); `dropped`: rows the store's own
    matching returned that `Query.selects` refused (a filter the server ignored or matched loosely).
    """

    instances: list[tuple[StoredInstance, Attributes]]
    cursor: str | None
    dropped: int = 0


class Opened(Protocol):
    """One instance being read: its size when the store knows it up front, and its bytes a chunk at a time."""

    @property
    def size(self) -> int | None: ...

    def chunks(self) -> Iterator[bytes]: ...


class Store(ABC):
    """A DICOM store the export reads from."""

    @abstractmethod
    def list_page(self, identifier: Identifier | None, cursor: str | None,
                  page_size: int) -> tuple[list[StoredInstance], str | None]:
        """Up to `page_size` instances under `identifier` (None: the whole store) from `cursor`, and the
        cursor of the rest (None once all are listed). Nothing under it: ([], None)."""

    def list_range(self, studies: StudyRange, cursor: str | None,
                   page_size: int) -> tuple[list[StoredInstance], str | None]:
        """list_page over the whole store, kept to the instances of `studies`: a page may hold none, with a cursor.

        Neither QIDO-RS nor C-FIND matches a range of UIDs, so by default a lane reads the whole store's listing
        and keeps its part: listing costs grow with the lanes, copies do not. A store that can do better says how.
        """
        page, cursor = self.list_page(None, cursor, page_size)
        return [i for i in page if studies.contains(i.study)], cursor

    @abstractmethod
    def search_page(self, query: Query, cursor: str | None, page_size: int,
                    include: tuple[str, ...] = ()) -> SearchPage:
        """About `page_size` (never many more) instances of what `query` selects at `query.level`, from `cursor`.

        A store may match on its own first (QIDO-RS, C-FIND, an index) but must check every row it got with
        `query.selects` before taking it (counting the rows it drops), so an ignored or loose filter never
        widens an export. A study or series that matches is taken whole. `include` names further attributes
        (keywords) to return with each instance when the store has them: the export uses them to take an
        instance that several queries select only once.
        """

    @abstractmethod
    def open(self, instance: StoredInstance) -> Opened:
        """The instance's bytes as stored; InstanceChangedOrGone when it is gone (or changed since listed)."""

    def read_url(self, instance: StoredInstance, valid_for: timedelta) -> str | None:
        """A URL the destination service can copy the instance from by itself, or None (stream it instead)."""
        return None
