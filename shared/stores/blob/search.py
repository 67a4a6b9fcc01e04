"""Queries on the built-in blob store: the container listed with its index, study by study, and matched.

The container is listed in name order with each blob's metadata, where STOW-RS put the instance's
attributes (shared/stores/blob/index.py). Names are `<study>/<series>/<sop>.dcm`, so a study's blobs come
together: each study is gathered (across listing pages if need be), given its ModalitiesInStudy and
related-instance counts, and `Query.selects` decides at the query's level. A blob without the index
(stored before it existed, or copied in by other means) has its header read instead (its first HEAD bytes,
the whole blob if they do not parse), so it is never invisible. The store matches nothing on its own, so
it drops nothing; a search lists the whole container once (names and metadata, no contents).

The cursor is JSON `[token, skip, taken]`: the listing page where the next study starts (its continuation
token), how many blobs of that page come before it, and how many of its instances are already taken.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pydicom
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared.query import Attributes, Query, attributes_from_dataset
from shared.stores.blob.index import indexed_attributes
from shared.stores.interface import SearchPage, StoredInstance, parse_blob_name

HEAD = 1024 * 1024  # bytes read of an unindexed instance to find its header
LISTING_PAGE = 5000  # the most one listing request returns
READERS = 8  # headers read in parallel

Listed = tuple[StoredInstance, dict[str, list[str]] | None, tuple[str | None, int]]  # instance, index, place


def search_page(container: ContainerClient, query: Query, cursor: str | None, page_size: int,
                include: tuple[str, ...] = ()) -> SearchPage:
    token, skip, taken = json.loads(cursor) if cursor else (None, 0, 0)
    wanted = {*query.matches, *include}
    found: list[tuple[StoredInstance, Attributes]] = []
    full_at: list[Any] | None = None  # the cursor once the page is full, moved on past studies that do not match
    with ThreadPoolExecutor(READERS) as pool:
        for study in studies(container, token, skip):
            place = study[0][2]
            resume = [place[0], place[1], 0]
            if full_at is not None and place[0] != full_at[0]:  # it starts on the next listing page: resume there
                return SearchPage(found, json.dumps(resume))
            selected = select(query, described(container, pool, study))[taken:]
            if full_at is not None:
                if selected:  # the next study that matches: the next page starts with it
                    return SearchPage(found, json.dumps(resume))
                full_at = _after(study)
                continue
            room = page_size - len(found)
            found.extend((instance, {k: v for k, v in row.items() if k in wanted}) for instance, row in selected[:room])
            if len(selected) > room:
                return SearchPage(found, json.dumps([place[0], place[1], taken + room]))
            taken = 0
            if len(found) >= page_size:  # full; the rest of this listing page is read on, so a search whose
                full_at = _after(study)  # last match is near the end needs no listing again to end
    return SearchPage(found, None)


def studies(container: ContainerClient, token: str | None = None, skip: int = 0,
            prefix: str | None = None) -> Iterator[list[Listed]]:
    """The container's blobs (under `prefix`) from (`token`, `skip`) on, a study at a time, each with its place
    in the listing."""
    study: list[Listed] = []
    while True:
        pages: Any = container.list_blobs(name_starts_with=prefix, include=["metadata"],
                                          results_per_page=LISTING_PAGE).by_page(token)
        try:
            page = list(next(pages))
        except (StopIteration, ResourceNotFoundError):  # nothing, or no container yet
            page = []
        for index, blob in enumerate(page[skip:], skip):
            parsed = parse_blob_name(blob.name)
            if parsed is None:
                continue
            if study and study[0][0].study != parsed[0]:
                yield study
                study = []
            study.append((StoredInstance(*parsed, size=None, etag=None), indexed_attributes(blob.metadata),
                          (token, index)))
        token, skip = getattr(pages, "continuation_token", None), 0  # a study cut by the page goes on in the next
        if not token:
            if study:
                yield study
            return


def _after(study: list[Listed]) -> list[Any]:
    """The cursor just past `study`: the place of its last blob, plus one."""
    token, index = study[-1][2]
    return [token, index + 1, 0]


def described(container: ContainerClient, pool: ThreadPoolExecutor,
              study: list[Listed]) -> list[tuple[StoredInstance, dict[str, list[str]]]]:
    """Each instance of one study with its attributes: its index (or header), its UIDs, and the study's and its
    series' computed ones (ModalitiesInStudy, the related-instance and related-series counts)."""
    instances = [instance for instance, _, _ in study]
    unindexed = [instance for instance, index, _ in study if index is None]
    headers = dict(zip(unindexed, pool.map(lambda i: _read_header(container, i), unindexed)))
    rows = [dict(index) if index is not None else headers[instance] for instance, index, _ in study]
    series_modalities: dict[str, set[str]] = defaultdict(set)
    series_sizes: dict[str, int] = defaultdict(int)
    for instance, row in zip(instances, rows):
        series_modalities[instance.series].update(row.get("Modality", []))
        series_sizes[instance.series] += 1
    study_modalities = sorted(set().union(*series_modalities.values()))
    for instance, row in zip(instances, rows):
        row.update(StudyInstanceUID=[instance.study], SeriesInstanceUID=[instance.series],
                   SOPInstanceUID=[instance.instance], ModalitiesInStudy=study_modalities,
                   NumberOfStudyRelatedInstances=[str(len(instances))],
                   NumberOfStudyRelatedSeries=[str(len(series_sizes))],
                   NumberOfSeriesRelatedInstances=[str(series_sizes[instance.series])])
    return list(zip(instances, rows))


def select(query: Query, rows: list[tuple[StoredInstance, dict[str, list[str]]]],
           level: str | None = None) -> list[tuple[StoredInstance, dict[str, list[str]]]]:
    """The instances (of one study) whose study, series or instance (`level`, by default the query's) the query
    selects: a study or series is judged on its first instance's row, which carries its attributes."""
    level = level or query.level
    if level == "instance":
        return [(i, r) for i, r in rows if query.selects(r)]
    first: dict[str, dict[str, list[str]]] = {}
    for instance, row in rows:
        first.setdefault(unit_of(instance, level), row)
    chosen = {name for name, row in first.items() if query.selects(row)}
    return [(i, r) for i, r in rows if unit_of(i, level) in chosen]


def unit_of(instance: StoredInstance, level: str) -> str:
    """The study, series or instance UID of `instance` at `level`."""
    return {"study": instance.study, "series": instance.series, "instance": instance.instance}[level]


def _read_header(container: ContainerClient, instance: StoredInstance) -> dict[str, list[str]]:
    """An unindexed instance's header as attributes (empty when it is gone or is not DICOM: it matches nothing)."""
    blob = container.get_blob_client(instance.blob_name)
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
