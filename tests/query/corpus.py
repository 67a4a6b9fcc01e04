"""A small archive with varied attributes, and what each kind of query must select from it on any store.

Four studies of CT_small's bytes with their attributes changed; `CASES` pairs a query with the units
(`S1`, `S1a`, `S1a2` ...) whose instances it selects, so the same table checks every store.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path

import pydicom
from azure.storage.blob import ContainerClient

from shared.export.expand import Searched, expand
from shared.query import parse_query
from shared.stores.interface import Store
from testkit.exporting import manifest, results

TEMPLATE = Path(pydicom.data.__file__).parent / "test_files" / "CT_small.dcm"

# study: (PatientID, PatientName, StudyDate, AccessionNumber, {series: (Modality, BodyPartExamined, instances)})
LAYOUT = {
    "S1": ("P-0001", "Doe^John", "20230315", "ACC1", {"S1a": ("CT", "CHEST", 2), "S1b": ("MR", "BRAIN", 1)}),
    "S2": ("P-0002", "Roe^Jane", "20221201", "ACC2", {"S2a": ("CT", "HEAD", 1)}),
    "S3": ("P-0042", "DOE^JIM", "20240110", "ACC3", {"S3a": ("MR", "BRAIN", 2)}),
    "S4": ("X-9", "Smith^Anna", "20230101", "ACC4", {"S4a": ("CT", "CHEST", 1)}),
}

# (query with {S1}-style placeholders for UIDs, the units it selects)
CASES = [
    ({"StudyDate": "20230101-20231231"}, {"S1", "S4"}),  # a range, its low end included
    ({"StudyDate": "20240101-"}, {"S3"}),  # open high end
    ({"StudyDate": "-20221231"}, {"S2"}),  # open low end
    ({"StudyDate": "20230315"}, {"S1"}),  # one date
    ({"PatientID": "P-00*"}, {"S1", "S2", "S3"}),  # wildcard
    ({"PatientID": "P-004?"}, {"S3"}),  # one-character wildcard
    ({"PatientID": "P-0042"}, {"S3"}),  # exact
    ({"ModalitiesInStudy": "MR"}, {"S1", "S3"}),  # modality at study level: the whole study
    ({"Modality": "MR"}, {"S1b", "S3a"}),  # modality at series level: the series only
    ({"Modality": "CT", "BodyPartExamined": "HEAD"}, {"S2a"}),
    ({"StudyInstanceUID": "{S1},{S3}"}, {"S1", "S3"}),  # a UID list
    ({"SeriesInstanceUID": "{S1a}"}, {"S1a"}),
    ({"PatientName": "Doe^John"}, {"S1"}),  # `^` in a name
    ({"PatientName": "doe^j*"}, {"S1", "S3"}),  # names match without regard to case
    ({"InstanceNumber": "2"}, {"S1a2", "S3a2"}),  # an instance-level attribute: instances
    ({"AccessionNumber": "NOPE"}, set()),  # nothing
]


def build() -> tuple[dict[str, bytes], dict[str, str]]:
    """(`<study>/<series>/<sop>.dcm` -> bytes, unit name -> its UID) with fresh UIDs."""
    template = pydicom.dcmread(TEMPLATE)
    files: dict[str, bytes] = {}
    uids: dict[str, str] = {}
    for study, (patient, name, date, accession, series_layout) in LAYOUT.items():
        uids[study] = _uid()
        for series, (modality, body_part, count) in series_layout.items():
            uids[series] = _uid()
            for number in range(1, count + 1):
                uids[f"{series}{number}"] = sop = _uid()
                ds = template
                ds.PatientID, ds.PatientName, ds.StudyDate, ds.AccessionNumber = patient, name, date, accession
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = uids[study], uids[series], modality
                ds.BodyPartExamined, ds.InstanceNumber = body_part, number
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
                buffer = io.BytesIO()
                ds.save_as(buffer)
                files[f"{uids[study]}/{uids[series]}/{sop}.dcm"] = buffer.getvalue()
    return files, uids


def selected(units: set[str], uids: dict[str, str], files: dict[str, bytes]) -> set[str]:
    """The file names under the named units (a unit is a study, a series or an instance)."""
    wanted = {uids[u] for u in units}
    return {name for name in files if wanted & set(name[: -len(".dcm")].split("/"))}


def query(template: dict[str, str], uids: dict[str, str]) -> dict[str, str]:
    """The query with its `{S1}` placeholders replaced by this archive's UIDs."""
    return {key: value.format(**uids) for key, value in template.items()}


def _uid() -> str:
    return f"2.25.{uuid.uuid4().int}"[:60]


# Several queries in one export, in both orders of level: (queries, per query [instances taken, rows dropped]).
# Each selects S1 and S3 together, each instance once, taken by the first query that selects it.
UNIONS = [
    ([{"Modality": "MR"}, {"ModalitiesInStudy": "MR"}, {"PatientID": "P-0042"}], {0: [3, 0], 1: [2, 0], 2: [0, 0]}),
    ([{"ModalitiesInStudy": "MR"}, {"Modality": "MR"}, {"InstanceNumber": "2"}], {0: [5, 0], 1: [0, 0], 2: [0, 0]}),
]


def expand_union(store: Store, queries: list[dict[str, str]]) -> tuple[list[str], dict[int, list[int]]]:
    """The instance names an export's expand step takes for `queries` on `store`, and its counts per query."""
    parsed = [parse_query(q) for q in queries]
    items = [Searched(n, q, tuple(parsed[:n])) for n, q in enumerate(parsed)]
    expansion = expand(store, list(items), None, batch_size=100, max_batches=4)
    return sorted(i.blob_name for batch in expansion.batches for i in batch), expansion.searched


# The queries of the exports through the host: overlapping (S3's MR series is selected by both of the first
# two), one selecting nothing. Together: S1 and S3, 5 instances.
EXPORTED = [{"PatientID": "P-0042", "Modality": "MR"}, {"ModalitiesInStudy": "MR"}, {"AccessionNumber": "NOPE"}]


def export_body(queries: list[dict[str, str]], destination: ContainerClient, conn: str) -> dict:
    return {"source": {"type": "query", "settings": {"queries": queries}},
            "destination": {"type": "azureblob", "settings": {"connectionString": conn,
                                                              "blobContainerName": destination.container_name}}}


def check_exported(done: dict, destination: ContainerClient, operation_id: str, files: dict[str, bytes],
                   uids: dict[str, str], dropped: int, same: Callable[[bytes, bytes, str], object] | None = None) -> None:
    """The export of EXPORTED completed with S1 and S3 each once, and its status counts each query;
    `dropped`: the rows the store returned for the first query that did not match it; `same(got, stored, name)`
    asserts an exported file is the stored one (default: byte for byte; a PACS over DIMSE re-encodes some)."""
    expected = {n: d for n, d in files.items() if n in selected({"S1", "S3"}, uids, files)}
    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", 5, 0)
    assert done["results"]["queries"] == [{"query": EXPORTED[0], "selected": 2, "dropped": dropped},
                                          {"query": EXPORTED[1], "selected": 3, "dropped": 0},
                                          {"query": EXPORTED[2], "selected": 0, "dropped": 0}]
    exported = results(destination, operation_id)
    if same is None:
        assert exported == expected
    else:
        assert sorted(exported) == sorted(expected)
        for name, data in expected.items():
            same(exported[name], data, name)
    assert sorted(path for path, _ in manifest(destination, operation_id)) == sorted(expected)
