"""Queries on the built-in blob store: each study's instances listed with their index, and matched.

Study by study in name order (a page of study prefixes at a time, `walk_blobs`), the study's blobs are
listed with their metadata, where STOW-RS put each instance's attributes (shared/stores/blob/index.py);
a blob without that index (stored before it existed, or copied in by other means) has its header read
instead (its first HEAD bytes, the whole blob if they do not parse), so it is never invisible. The study's
ModalitiesInStudy and related-instance counts are added, and `Query.selects` decides at the query's level.
The store matches nothing on its own, so it drops nothing. A search lists the whole store's names and
metadata once (what a table index with server-side filters would spare; see docs/EXPORT.md).
The cursor is JSON: the page of studies, how many of that page are done, and how many instances of the
current study are already taken.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pydicom
from azure.core.exceptions import ResourceNotFoundError

from shared.query import Attributes, Query, attributes_from_dataset
from shared.stores.blob.index import indexed_attributes
from shared.stores.interface import SearchPage, StoredInstance, parse_blob_name
from shared.uids import is_uid

if TYPE_CHECKING:
    from shared.stores.blob.store import DicomStore

HEAD = 1024 * 1024  # bytes read of each instance to find its header
STUDIES = 50  # study prefixes listed at once
READERS = 8  # headers read in parallel


def search_page(store: DicomStore, query: Query, cursor: str | None, page_size: int,
                include: tuple[str, ...] = ()) -> SearchPage:
    token, done, inner = json.loads(cursor) if cursor else (None, 0, 0)
    found: list[tuple[StoredInstance, Attributes]] = []
    while True:
        pages: Any = store.container.walk_blobs(delimiter="/", results_per_page=STUDIES).by_page(token)
        try:
            studies = [p.name.rstrip("/") for p in next(pages) if p.name.endswith("/")]
        except (StopIteration, ResourceNotFoundError):
            return SearchPage(found, None)
        for study in studies[done:]:
            wanted = {*query.matches, *include}
            selected = [(i, {k: v for k, v in row.items() if k in wanted})
                        for i, row in (_select(store, query, study) if is_uid(study) else [])]
            taken = selected[inner:inner + page_size - len(found)]
            found.extend(taken)
            if inner + len(taken) < len(selected):
                return SearchPage(found, json.dumps([token, done, inner + len(taken)]))
            done, inner = done + 1, 0
            if len(found) >= page_size:
                return SearchPage(found, json.dumps([token, done, 0]))
        token, done = pages.continuation_token, 0
        if not token:
            return SearchPage(found, None)


def _select(store: DicomStore, query: Query, study: str) -> list[tuple[StoredInstance, Attributes]]:
    """The instances of `study` the query selects (the store matches nothing by itself, so none are dropped)."""
    listed = [(instance, indexed_attributes(blob.metadata))
              for blob in store.container.list_blobs(name_starts_with=f"{study}/", include=["metadata"])
              if (parsed := parse_blob_name(blob.name)) for instance in [StoredInstance(*parsed, None, None)]]
    instances = [instance for instance, _ in listed]
    with ThreadPoolExecutor(READERS) as pool:
        rows = list(pool.map(lambda pair: pair[1] if pair[1] is not None else _attributes(store, pair[0]), listed))
    series_modalities: dict[str, set[str]] = defaultdict(set)
    series_sizes: dict[str, int] = defaultdict(int)
    for instance, row in zip(instances, rows):
        series_modalities[instance.series].update(row.get("Modality", []))
        series_sizes[instance.series] += 1
    study_modalities = sorted(set().union(*series_modalities.values()))
    for instance, row in zip(instances, rows):
        row.update(StudyInstanceUID=[instance.study], SeriesInstanceUID=[instance.series],
                   SOPInstanceUID=[instance.instance], ModalitiesInStudy=study_modalities, NumberOfStudyRelatedInstances=[str(len(instances))],
                   NumberOfSeriesRelatedInstances=[str(series_sizes[instance.series])])
    if query.level == "instance":
        return [(i, r) for i, r in zip(instances, rows) if query.selects(r)]
    unit = (lambda i: i.study) if query.level == "study" else (lambda i: i.series)
    first: dict[str, Attributes] = {}
    for instance, row in zip(instances, rows):
        first.setdefault(unit(instance), row)
    chosen = {name for name, row in first.items() if query.selects(row)}
    return [(i, r) for i, r in zip(instances, rows) if unit(i) in chosen]


def _attributes(store: DicomStore, instance: StoredInstance) -> dict[str, list[str]]:
    """The instance's header as attributes (empty when it is gone or is not DICOM: it then matches nothing)."""
    blob = store.container.get_blob_client(instance.blob_name)
    try:
        head = blob.download_blob(offset=0, length=HEAD).readall()
        try:
            dataset = pydicom.dcmread(io.BytesIO(head), stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - a header longer than HEAD: read the whole file
            dataset = pydicom.dcmread(io.BytesIO(blob.download_blob().readall()), stop_before_pixels=True)
    except ResourceNotFoundError:
        return {}
    except Exception:  # noqa: BLE001 - not DICOM: nothing to match
        return {}
    return attributes_from_dataset(dataset)
