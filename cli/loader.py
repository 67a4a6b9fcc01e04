"""The bulk loader: walk folders, keep the DICOM files, STOW them in parallel batches, say what happened.

    dicom-export load PATH...        (or, in the repository: python -m cli load PATH...)

A file is DICOM when it has the Part 10 preamble ('DICM' at byte 128), or when pydicom finds a
dataset with a SOP Class or SOP Instance UID in it (a dataset written without the Part 10 header);
anything else is reported and skipped. The server is the judge of what it stores: each failure is
reported with the reason from its STOW-RS response.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from requests.adapters import HTTPAdapter
from rich.console import Console

from .api import Api, ApiError
from .progress import plural, transfer_progress
from .stow import MultipartBody, parse_stow_response

PREAMBLE_LENGTH = 128
# Requests whose answer is an operator problem, not a per-file one: stop the whole load.
FATAL_STATUSES = frozenset({401, 403, 404, 405})


@dataclass(frozen=True)
class DicomFile:
    """A file to store, with the UIDs read from its header (None when pydicom could not read them)."""

    path: Path
    size: int
    study: str | None = None
    series: str | None = None
    instance: str | None = None

    @property
    def key(self) -> tuple[str, str, str] | None:
        """Where the store will put it: one instance per study/series/SOP instance UID."""
        if self.study and self.series and self.instance:
            return self.study, self.series, self.instance
        return None


STORED, REJECTED, NOT_DICOM, DUPLICATE = "stored", "rejected", "not DICOM", "duplicate"


@dataclass(frozen=True)
class Outcome:
    """What happened to one file: `kind` STORED (with its retrieve URL), or REJECTED (by the server, or
    the request failed), NOT_DICOM or DUPLICATE (skipped here), with the reason."""

    path: Path
    kind: str
    reason: str = ""
    url: str = ""
    study: str | None = None

    @property
    def stored(self) -> bool:
        return self.kind == STORED


@dataclass
class Report:
    """Every file the load found, with what became of it."""

    outcomes: list[Outcome] = field(default_factory=list)
    bytes_sent: int = 0
    root: Path | None = None  # the folder the loaded paths have in common: files are shown relative to it

    def show(self, path: Path) -> str:
        return relative(path, self.root)

    def of(self, *kinds: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind in kinds]

    @property
    def stored(self) -> list[Outcome]:
        return self.of(STORED)

    @property
    def failed(self) -> list[Outcome]:
        return self.of(REJECTED)

    @property
    def skipped(self) -> list[Outcome]:
        return self.of(NOT_DICOM, DUPLICATE)

    @property
    def not_dicom(self) -> list[Outcome]:
        return self.of(NOT_DICOM)

    @property
    def duplicates(self) -> list[Outcome]:
        return self.of(DUPLICATE)

    @property
    def exit_code(self) -> int:
        """0 all stored, 1 some files skipped (not DICOM, duplicate), 2 some rejected or not sent."""
        return 2 if self.failed else 1 if self.skipped else 0

    @property
    def studies(self) -> list[str]:
        """The studies that received at least one instance, in first-seen order."""
        return list(dict.fromkeys(o.study for o in self.stored if o.study))

    def as_json(self) -> dict:
        def row(o: Outcome) -> dict:
            return {"path": str(o.path), "url": o.url} if o.stored else {
                "path": str(o.path), "kind": o.kind, "reason": o.reason}
        return {"stored": [row(o) for o in self.stored], "failed": [row(o) for o in self.failed],
                "skipped": [row(o) for o in self.skipped], "bytes_sent": self.bytes_sent}


# --- finding and recognising files ----------------------------------------------------------------

def walk(paths: Iterable[Path]) -> Iterator[Path]:
    """Every file under `paths` (files given directly are yielded as they are), in a stable order."""
    for path in paths:
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    yield Path(folder) / name
        elif path.exists():
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")


def inspect(path: Path) -> DicomFile | Outcome:
    """A DicomFile when `path` holds DICOM, otherwise a skipped Outcome saying why not."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(PREAMBLE_LENGTH + 4)
    except OSError as e:
        return Outcome(path, REJECTED, f"cannot read: {e.strerror or e}")
    if size == 0:
        return Outcome(path, NOT_DICOM, "not DICOM: empty file")
    has_preamble = head[PREAMBLE_LENGTH:] == b"DICM"
    dataset = _read_header(path, force=not has_preamble)
    uids = [str(dataset.get(k, "")) or None if dataset is not None else None
            for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    if has_preamble or (dataset is not None and (uids[2] or "SOPClassUID" in dataset)):
        return DicomFile(path, size, *uids)
    return Outcome(path, NOT_DICOM, "not DICOM: no 'DICM' preamble and no DICOM dataset pydicom can read")


def _read_header(path: Path, force: bool) -> pydicom.Dataset | None:
    """The dataset up to the pixel data, large values left unread; None when pydicom cannot parse it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(path, stop_before_pixels=True, force=force, defer_size=1024)
        except Exception:  # noqa: BLE001 - pydicom raises many kinds on garbage; each means "cannot read"
            return None


def common_root(paths: list[Path]) -> Path | None:
    """The deepest folder holding all `paths` (a folder given holds itself)."""
    try:
        return Path(os.path.commonpath([p.absolute() if p.is_dir() else p.absolute().parent for p in paths]))
    except ValueError:
        return None


def relative(path: Path, root: Path | None) -> str:
    return os.path.relpath(path.absolute(), root) if root and path.absolute().is_relative_to(root) else str(path)


def plan(found: Iterable[DicomFile | Outcome], root: Path | None = None) -> tuple[list[DicomFile], list[Outcome]]:
    """The files to send, and the others: not DICOM, unreadable, or a second file for an instance.

    Two files with the same study/series/SOP instance UIDs would replace each other in the store,
    in whatever order parallel requests land; we send the first (in path order) and say so.
    """
    to_send: list[DicomFile] = []
    others: list[Outcome] = []
    first: dict[tuple[str, str, str], Path] = {}
    for item in found:
        if isinstance(item, Outcome):
            others.append(item)
        elif item.key and item.key in first:
            others.append(Outcome(item.path, DUPLICATE, "same study/series/SOP instance UIDs as "
                                  f"{relative(first[item.key], root)} (the store keeps one file per instance)"))
        else:
            if item.key:
                first[item.key] = item.path
            to_send.append(item)
    return to_send, others


def batches(files: Iterable[DicomFile], max_files: int = 16, max_bytes: int = 32 << 20) -> Iterator[list[DicomFile]]:
    """Group files into STOW requests; a file whose SOP Instance UID we could not read goes alone,
    and no batch holds one SOP Instance UID twice, so every answer maps back to exactly one file."""
    batch: list[DicomFile] = []
    size = 0
    for f in files:
        if not f.instance:
            yield [f]
            continue
        if batch and (len(batch) >= max_files or size + f.size > max_bytes
                      or any(b.instance == f.instance for b in batch)):
            yield batch
            batch, size = [], 0
        batch.append(f)
        size += f.size
    if batch:
        yield batch


# --- the STOW-RS request and its answer -----------------------------------------------------------
def store_batch(api: Api, batch: list[DicomFile], on_read: Callable[[int], None]) -> list[Outcome]:
    """Send one batch; every file gets an Outcome. Raises ApiError for FATAL_STATUSES (and Unreachable).

    The answer names instances by SOP Instance UID. A file it does not account for (the server read
    it differently than we did, e.g. found no UIDs at all) is sent again on its own, so that the
    answer to that request can only be about it.
    """
    body = MultipartBody([f.path for f in batch], on_read)
    try:
        response = api.stow(body, body.content_type)
    except ApiError as e:
        if e.status in FATAL_STATUSES:
            raise
        return [Outcome(f.path, REJECTED, f"HTTP {e.status}: {e.message}") for f in batch]
    finally:
        body.close()
    try:
        stored, failed = parse_stow_response(response.json())
    except ValueError:
        stored, failed = {}, []
    by_uid = {uid: reason for uid, reason in failed if uid}
    outcomes = []
    for f in batch:
        if f.instance in stored:
            outcomes.append(Outcome(f.path, STORED, url=stored[f.instance], study=f.study))
        elif f.instance in by_uid:
            outcomes.append(Outcome(f.path, REJECTED, by_uid[f.instance]))
        elif len(batch) > 1:
            outcomes += store_batch(api, [f], on_read)
        elif stored:
            outcomes.append(Outcome(f.path, STORED, url=next(iter(stored.values())), study=f.study))
        else:
            reason = failed[0][1] if failed else f"HTTP {response.status_code}, the answer names no instance"
            outcomes.append(Outcome(f.path, REJECTED, reason))
    return outcomes


# --- the whole load, with progress ----------------------------------------------------------------

def load(api: Api, paths: list[Path], progress_console: Console, workers: int = 4,
         max_files: int = 16, max_bytes: int = 32 << 20) -> Report:
    """Find, plan and store; the progress goes to `progress_console` (stderr for the CLI)."""
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)  # unreadable files are reported by us, once
    report = Report(root=common_root(paths))
    found = []
    with progress_console.status("scanning") as status:
        for path in walk(paths):
            found.append(inspect(path))
            status.update(f"scanning: {len(found)} files")
    to_send, report.outcomes = plan(found, report.root)
    progress_console.print(f"{plural(len(found), 'file')} found, {len(to_send):,} to store")
    lock = threading.Lock()
    with transfer_progress("storing", progress_console) as progress:
        total = sum(f.size for f in to_send)
        task = progress.add_task("storing", total=total, files=f"0/{len(to_send)}")

        def sent(n: int) -> None:
            with lock:
                report.bytes_sent += n
            progress.advance(task, n)

        api.session.mount(api.base_url, HTTPAdapter(pool_connections=workers, pool_maxsize=workers))
        done = 0
        with ThreadPoolExecutor(workers, thread_name_prefix="stow") as pool:
            futures = [pool.submit(store_batch, api, b, sent) for b in batches(to_send, max_files, max_bytes)]
            try:
                for future in as_completed(futures):
                    outcomes = future.result()
                    report.outcomes += outcomes
                    done += len(outcomes)
                    progress.update(task, files=f"{done}/{len(to_send)}")
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        progress.update(task, completed=total)
    report.outcomes.sort(key=lambda o: o.path)
    return report
