"""Selecting by query: the export's search against a plain script over the same server, and the index's cost.

    .venv/bin/python -m bench.query [--runs 3] [--studies 10000] [--selected 1000] [--stow-requests 20] [--stow-kib 256]

Makes `--studies` one-instance studies (64-byte Secondary Captures), `--selected` of them dated 2023 and the
rest 2015, and selects `StudyDate=20230101-20231231`, timing only the selection (every instance of every
matching study named, as the expand step needs them; nothing copied), in one process, in alternating order:
- Orthanc (testkit/orthanc.py), the studies stored through STOW-RS:
  export: `DicomWebStore.search_page` page by page (pages of 1 000, an export generation's reach);
  script: QIDO-RS `/studies?StudyDate=...` paged by 1 000, then `/studies/{s}/instances` of each study;
- the built-in store on Azurite, the blobs put with their index metadata as STOW writes it:
  export: `DicomStore.search_page` page by page;
  script: one listing of the container with metadata, the index read and the date range compared;
  and once, the same search over a container of the same blobs without the index (headers read).
Then the index's cost per STOW-RS request (20 files of `--stow-kib` KiB each, about a CT slice), in process
against Azurite: `store_request` as it is, against `store_request` with the index switched off (no extra tags
read, no metadata), alternating.
Prints and appends to bench/RESULTS.md the medians; targets: the export within 1.1x of the script, the index
under 10 % of a STOW's time.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.measure import median
from bench.report import add_results_argument, report, table
from devhost.azurite import Azurite, free_port
from shared.query import parse_query
from shared.stores.blob import stow
from shared.stores.blob.index import index_metadata, indexed_attributes
from shared.stores.blob.store import DicomStore
from shared.stores.dicomweb.session import dicomweb_session
from shared.stores.dicomweb.settings import DicomWebSettings
from shared.stores.dicomweb.store import DicomWebStore
from testkit.instances import encode, make_dataset
from testkit.orthanc import Orthanc
from testkit.seed import uid
from testkit.stack import container_client

QUERY = {"StudyDate": "20230101-20231231"}
PAGE = 1000


def make_files(studies: int, selected: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """(blob name, bytes, index metadata) of each one-instance study."""
    made = []
    for n in range(studies):
        study, series, sop = uid(), uid(), uid()
        ds = make_dataset(study, series, sop, pixel_bytes=64, StudyDate="20230615" if n < selected else "20150101")
        made.append((f"{study}/{series}/{sop}.dcm", encode(ds), index_metadata(ds)))
    return made


def select(store, query) -> int:
    """Every instance the query selects, page by page: how many."""
    count, cursor = 0, None
    while True:
        page = store.search_page(query, cursor, PAGE)
        count += len(page.instances)
        if not (cursor := page.cursor):
            return count


def qido_script(session: requests.Session, url: str) -> int:
    """The plain script: QIDO the matching studies page by page, then each study's instances."""
    studies, offset = [], 0
    while True:
        rows = session.get(f"{url}/studies", params={**QIDO_QUERY, "limit": PAGE, "offset": offset,
                                                     "includefield": "0020000D"}, timeout=120).json()
        studies += [r["0020000D"]["Value"][0] for r in rows]
        offset += len(rows)
        if not rows:
            break
    return sum(len(session.get(f"{url}/studies/{s}/instances", timeout=120).json()) for s in studies)


QIDO_QUERY = {"StudyDate": QUERY["StudyDate"]}


def list_script(store: DicomStore) -> int:
    """The plain script over the built-in store: list everything with metadata, read the index, compare dates."""
    found = 0
    for blob in store.container.list_blobs(include=["metadata"]):
        dates = (indexed_attributes(blob.metadata) or {}).get("StudyDate") or [""]
        found += "20230101" <= dates[0] <= "20231231"
    return found


def timed(measure) -> tuple[float, int]:
    start = time.perf_counter()
    count = measure()
    return time.perf_counter() - start, count


def side_by_side(runs: int, export, script, expected: int) -> tuple[list[float], list[float]]:
    export_times, script_times = [], []
    for run in range(runs):
        order = [("export", export, export_times), ("script", script, script_times)]
        for name, measure, times in order if run % 2 == 0 else order[::-1]:
            seconds, count = timed(measure)
            assert count == expected, f"{name} selected {count}, not {expected}"
            times.append(seconds)
            print(f"  run {run + 1}: {name} {seconds:.2f} s", flush=True)
    return export_times, script_times


def stow_bodies(kib: int, count: int) -> list[bytes]:
    """`count` STOW-RS bodies of 20 new instances of `kib` KiB each."""
    bodies = []
    for _ in range(count):
        parts = b"".join(b"--b\r\nContent-Type: application/dicom\r\n\r\n%s\r\n" % encode(make_dataset(
            uid(), uid(), uid(), pixel_bytes=kib * 1024, StudyDate="20230615", PatientName="Doe^John"))
            for _ in range(20))
        bodies.append(parts + b"--b--\r\n")
    return bodies


def stow_cost(store: DicomStore, kib: int, requests_count: int, runs: int) -> tuple[list[float], list[float]]:
    """Seconds per STOW request of 20 files, with the index and without, alternating; every measurement stores
    new instances (an overwrite costs the emulator otherwise than a first write)."""
    store.ensure_container()
    content_type = 'multipart/related; type="application/dicom"; boundary=b'
    indexed, plain = [], []
    saved = (stow.index_metadata, stow.TAGS)
    for run in range(runs):
        for with_index in ((True, False) if run % 2 == 0 else (False, True)):
            stow.index_metadata, stow.TAGS = saved if with_index else (lambda _: {}, ())
            bodies = stow_bodies(kib, requests_count)
            start = time.perf_counter()
            for body in bodies:
                assert stow.store_request(store, body, content_type, "http://bench").status == 200
            (indexed if with_index else plain).append((time.perf_counter() - start) / len(bodies))
    stow.index_metadata, stow.TAGS = saved
    return indexed, plain


def measure_orthanc(folder: Path, files: list, runs: int, selected: int) -> tuple:
    orthanc = Orthanc(folder / "orthanc").start()
    try:
        print("storing them in Orthanc ...", flush=True)
        orthanc.stow(*(data for _, data, _ in files))
        config = DicomWebSettings.from_settings(orthanc.app_settings())
        store = DicomWebStore(config.url, dicomweb_session(config))
        session = dicomweb_session(config)
        session.headers["Accept"] = "application/dicom+json"
        export, script = side_by_side(runs, lambda: select(store, parse_query(QUERY)),
                                      lambda: qido_script(session, config.url), selected)
    finally:
        orthanc.stop()
    return "Orthanc (DICOMweb)", median(export), median(script), median(export) / median(script)


def measure_builtin(azurite: Azurite, files: list, runs: int, selected: int) -> list[tuple]:
    print("putting them in the built-in store ...", flush=True)
    indexed = DicomStore(container_client(azurite.connection_string, f"q{uuid.uuid4().hex[:8]}"))
    bare = DicomStore(container_client(azurite.connection_string, f"q{uuid.uuid4().hex[:8]}"))
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda f: indexed.put(*f[0][:-4].split("/"), io.BytesIO(f[1]), len(f[1]), f[2]), files))
        list(pool.map(lambda f: bare.put(*f[0][:-4].split("/"), io.BytesIO(f[1]), len(f[1])), files))
    query = parse_query(QUERY)
    export, script = side_by_side(runs, lambda: select(indexed, query), lambda: list_script(indexed), selected)
    seconds, count = timed(lambda: select(bare, query))
    assert count == selected
    return [("built-in store (index in blob metadata)", median(export), median(script),
             median(export) / median(script)),
            ("built-in store, blobs without the index (headers read), 1 run", seconds, median(script),
             seconds / median(script))]


def measure_stow(azurite: Azurite, kib: int, requests_count: int, runs: int) -> str:
    print("STOW with and without the index ...", flush=True)
    store = DicomStore(container_client(azurite.connection_string, f"q{uuid.uuid4().hex[:8]}"))
    with_index, without = stow_cost(store, kib, requests_count, runs)
    cost = median(with_index) - median(without)
    return table([f"STOW-RS request of 20 files of {kib} KiB", "ms"], [
        ("with the index", median(with_index) * 1000), ("without", median(without) * 1000),
        ("the index's cost", cost * 1000), ("as a share of the STOW", f"{100 * cost / median(without):.1f} %")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--selected", type=int, default=1_000)
    parser.add_argument("--stow-requests", type=int, default=20)
    parser.add_argument("--stow-kib", type=int, default=256)
    parser.add_argument("--parts", default="orthanc,builtin,stow", help="which measures (comma-separated)")
    add_results_argument(parser)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    folder = Path(tempfile.mkdtemp(prefix="bench-query-"))
    files = []
    if parts & {"orthanc", "builtin"}:
        print(f"making {args.studies} studies ...", flush=True)
        files = make_files(args.studies, args.selected)
    rows = [measure_orthanc(folder, files, args.runs, args.selected)] if "orthanc" in parts else []
    sections = []
    azurite = Azurite(folder / "azurite", free_port(), log_path=folder / "azurite.log").start()
    try:
        if "builtin" in parts:
            rows += measure_builtin(azurite, files, args.runs, args.selected)
        if "stow" in parts:
            sections.append(measure_stow(azurite, args.stow_kib, args.stow_requests, args.runs))
    finally:
        azurite.stop()
    if rows:
        sections.insert(0, table(["store", "export's search (s)", "plain script (s)", "ratio"], rows))
    report(f"Selecting {args.selected} of {args.studies} studies by query, and the index's cost (issue 19)",
           "\n\n".join(sections),
           f"Medians of {args.runs} runs, export and script alternating. The built-in store's plain script is one "
           "listing with metadata, the index read and the date compared: the least any selection over this store "
           "must do.", results=args.results)


if __name__ == "__main__":
    sys.exit(main())
