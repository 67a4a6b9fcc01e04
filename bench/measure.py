"""Measuring the export from outside: timed export runs, resident memory, CPU seconds, medians."""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

import psutil

from cli.api import Api, ApiError
from testkit.exporting import export_body
from testkit.host import Host

KIB = 1024
MIB = 1024 * KIB
HUB_FILE = "DicomExportHub.sqlite"  # host.json hubName


@dataclass(frozen=True)
class ExportRun:
    operation_id: str
    seconds: float
    view: dict
    status_seconds: tuple[float, ...] = ()  # how long each status poll took to answer, in order


class TimedApi(Api):
    """The export client, noting how long each status poll took to answer."""

    def __init__(self, base_url: str):
        super().__init__(base_url, timeout=120)
        self.answered: list[float] = []

    def operation(self, operation_id: str) -> dict:
        asked = time.perf_counter()
        try:
            return super().operation(operation_id)
        finally:
            self.answered.append(time.perf_counter() - asked)


def start_export(
    host: Host, values: Sequence[str], connection_string: str, container: str,
    deidentification: dict | None = None, api: Api | None = None, extra: dict | None = None,
) -> tuple[str, float]:
    """POST /export (de-identified with `deidentification`, with the `extra` members, e.g. `output`); the operation
    id and the time just before the POST."""
    body = export_body(list(values), connectionString=connection_string, blobContainerName=container) | (
        {"deidentification": deidentification} if deidentification else {}) | (extra or {})
    posted = time.time()
    try:
        return (api or Api(host.base_url, timeout=120)).start_export(body, route="/export")["id"], posted
    except ApiError as e:
        raise SystemExit(f"POST /export answered {e}") from None


def run_export(
    host: Host,
    values: Sequence[str],
    connection_string: str,
    container: str,
    timeout: float = 3600,
    poll: float = 0.5,
    deidentification: dict | None = None,
    extra: dict | None = None,
) -> ExportRun:
    """Export `values` to `container` and wait for the end.

    The time is from the POST to the moment the host recorded the operation's end in its task hub (host and
    client share the clock; the status API gives whole seconds only), so polling can be slow enough (`poll`
    seconds) not to weigh on the host it measures.
    """
    api = TimedApi(host.base_url)
    operation_id, posted = start_export(host, values, connection_string, container, deidentification, api, extra)
    try:
        view = api.wait(operation_id, interval=poll, timeout=timeout - (time.time() - posted))
    except TimeoutError as e:
        raise SystemExit(f"export {e}") from None
    if view["status"] != "completed":
        raise SystemExit(f"export {operation_id} ended {view['status']}: {view.get('errors')}")
    return ExportRun(operation_id, ended_at(host, operation_id) - posted, view, tuple(api.answered))


def task_hub(host: Host) -> Path:
    """The host's task hub database (SQLite, see devhost/taskhub.py)."""
    return host.data_dir / HUB_FILE


def ended_at(host: Host, operation_id: str) -> float:
    """When the host last updated the operation (its end, once terminal), to the microsecond."""
    with closing(sqlite3.connect(f"file:{task_hub(host)}?mode=ro", uri=True)) as db:
        (updated,) = db.execute(
            "SELECT last_updated_time FROM instances WHERE instance_id = ?", (operation_id,)
        ).fetchone()
    return datetime.fromisoformat(updated).timestamp()


def rss(pid: int) -> int:
    """Resident bytes of process `pid` and its children."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def cpu_seconds(process: psutil.Process, children: bool = False) -> float:
    """User and system CPU seconds `process` (and with `children`, its running children) has used so far."""
    total = 0.0
    for each in [process, *(process.children(recursive=True) if children else [])]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class Peak:
    """Calls `sample()` every `interval` seconds while in the `with` block; `.peak` is the highest value seen."""

    def __init__(self, sample: Callable[[], float], interval: float = 0.01):
        self.sample, self.interval, self.peak = sample, interval, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.sample())
            time.sleep(self.interval)

    def __enter__(self) -> Self:
        self.peak = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())


class PeakRss(Peak):
    """The highest RSS of process `pid` (and its children), sampled every 10 ms."""

    def __init__(self, pid: int, interval: float = 0.01):
        super().__init__(lambda: rss(pid), interval)


def settle_rss(pid: int, seconds: float = 1.0) -> int:
    """The host's RSS after a short pause (idle figure)."""
    time.sleep(seconds)
    return rss(pid)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def repeat(runs: int, measure: Callable[[int], dict]) -> list[dict]:
    """`measure(run)` `runs` times; prints each run's figures as it goes."""
    found = []
    for run in range(runs):
        figures = measure(run)
        print(
            f"  run {run + 1}/{runs}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items()), flush=True
        )
        found.append(figures)
    return found


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
