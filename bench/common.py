"""Plumbing shared by the export benchmarks: Azurite and the local host, a fast seeded store, exports, memory.

Every benchmark starts its own Azurite (free port, data in a temporary folder) and one local host on the
real app (`function_app.py`), seeds the store by uploading DICOM files straight to its container at
`<study>/<series>/<sop>.dcm` (the layout STOW writes, without STOW's cost), posts exports over HTTP as a
client would, and appends its figures to bench/RESULTS.md with the machine and the exact command.
"""

from __future__ import annotations

import io
import os
import platform
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import psutil
import requests
import urllib3
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devhost.azurite import Azurite, free_port
from shared.connection_pool import pooled_session
from tests.hosting import Host
from tests.store.instances import encode, make_dataset

KIB = 1024
MIB = 1024 * KIB
RESULTS = ROOT / "bench" / "RESULTS.md"
STORE_CONTAINER = "dicomweb"
HUB_FILE = "DicomExportHub.sqlite"  # host.json hubName
TERMINAL = ("completed", "succeeded", "failed", "canceled")
# The export's settings the benchmarks share: the published defaults, with quick retries so a hiccup of
# the emulator costs seconds, not minutes.
BASE_SETTINGS = {
    "DicomServer__Features__EnableExtendedExport": "true",
    "Export__AllowEmulator": "true",
    "Export__RetryOptions__FirstRetryIntervalSeconds": "1",
    "Export__Deidentification__Key": "bench key",  # de-identified runs need no key file in the worktree
}


# ---------------------------------------------------------------------------------------------- the stack
@dataclass
class Stack:
    """One Azurite and a local host on the app, sharing a temporary folder.

    With `before` (a git ref), a second host runs the app and devhost as they were at that commit (an
    archive of it), on the same Azurite and store: a change is measured against its predecessor in one run.
    """

    folder: Path
    settings: dict[str, str] = field(default_factory=dict)
    before: str | None = None
    azurite: Azurite | None = None
    host: Host | None = None
    host_before: Host | None = None
    _hosts: list[Host] = field(default_factory=list)

    @property
    def connection_string(self) -> str:
        assert self.azurite is not None
        return self.azurite.connection_string

    @property
    def hub_dir(self) -> Path:
        return self.folder / "hub"

    def start(self) -> Stack:
        self.azurite = Azurite(
            self.folder / "azurite", free_port(), log_path=self.folder / "azurite.log"
        ).start()
        self.host = self.add_host()
        if self.before:
            self.host_before = self.add_host(
                app=checkout(self.before, self.folder / "before"), name="hub-before"
            )
        return self

    def add_host(self, settings: dict[str, str] | None = None, app: Path = ROOT, name: str = "hub") -> Host:
        """Another host on this Azurite and store, with its own task hub `name` and `settings` on top."""
        env = {
            **BASE_SETTINGS,
            **self.settings,
            **(settings or {}),
            "AzureWebJobsStorage": self.connection_string,
            "DicomStore__ContainerName": STORE_CONTAINER,
            "Export__SecretKey": Fernet.generate_key().decode(),
        }
        host = Host(app, self.folder / name, env=env, cwd=app).start()
        self._hosts.append(host)
        return host

    def stop(self) -> None:
        for host in self._hosts:
            host.stop()
        if self.azurite:
            self.azurite.stop()

    def container(self, name: str, pool: int = 64) -> ContainerClient:
        """A client of container `name` (created if missing) keeping up to `pool` connections."""
        return container_client(self.connection_string, name, pool)

    def store(self, pool: int = 64) -> ContainerClient:
        return self.container(STORE_CONTAINER, pool)


def container_client(connection_string: str, name: str, pool: int = 64, **options: Any) -> ContainerClient:
    """A client of container `name` (created if missing) keeping up to `pool` connections; `options` go to
    the client (transfer sizes)."""
    client = ContainerClient.from_connection_string(
        connection_string, name, session=pooled_session(pool), **options
    )
    if not client.exists():
        client.create_container()
    return client


def checkout(ref: str, folder: Path) -> Path:
    """The project's files at git `ref`, extracted into `folder` (the repository is left untouched)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


@contextmanager
def stack(
    settings: dict[str, str] | None = None, before: str | None = None, keep: bool = False
) -> Iterator[Stack]:
    """A started Stack, stopped (and its folder removed unless `keep`) on exit."""
    folder = Path(tempfile.mkdtemp(prefix="dicom-bench-"))
    running = Stack(folder, dict(settings or {}), before)
    try:
        yield running.start()
    finally:
        running.stop()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- seeding
FIRST_INSTANCE = 100_001  # instance numbers of equal width (up to 899 999 per study): UIDs of equal length


def uid() -> str:
    return f"2.25.{uuid.uuid4().int}"[:60]


def dicom_file(study: str, series: str, sop: str, size: int) -> bytes:
    """A valid DICOM Part 10 Secondary Capture of `size` bytes (rounded up to even): OB pixel data pads it."""
    header = len(encode(make_dataset(study, series, sop, pixel_bytes=0)))
    pad = max(0, size - header)
    return encode(make_dataset(study, series, sop, pixel_bytes=pad + pad % 2))


@dataclass(frozen=True)
class Seeded:
    studies: list[str]
    files: list[str]  # blob names
    total_bytes: int


def seed(
    store: ContainerClient,
    studies: int,
    per_study: int,
    size: int,
    series_per_study: int = 1,
    threads: int = 32,
) -> Seeded:
    """Upload `studies` × `per_study` instances of about `size` bytes straight to the store's container.

    Quick enough for 10⁵ blobs: each series' first file is encoded once (pydicom takes about 1 ms a file)
    and every other instance of it is that file with its own SOP Instance UID written over the first's
    (UIDs of equal length, so no length field changes). The files go as plain PUTs with a container SAS
    from `threads` threads: about 1 000 blobs/s into an empty Azurite here, against about 600 through the
    SDK's per-request pipeline. Azurite's one Node process is the bound, and it slows as it fills and as the
    machine's load grows: 100 000 took 311 s at a load average of 11, 1 130 s at 20 to 30.
    """
    names: list[tuple[str, str, str]] = []
    templates: dict[str, tuple[bytes, bytes]] = {}  # series → (its first file, that file's SOP UID)
    study_uids = []
    for _ in range(studies):
        study = uid()
        study_uids.append(study)
        series = [f"{study}.{s + 1}" for s in range(series_per_study)]
        names += [
            (study, series[n % series_per_study], f"{study}.{series_per_study + 1}.{FIRST_INSTANCE + n}")
            for n in range(per_study)
        ]
    for study, series, sop in names:
        if series not in templates:
            template = dicom_file(study, series, sop, size)
            assert template.count(sop.encode()) == 2, "the SOP UID is in the file meta and the data set"
            templates[series] = (template, sop.encode())
    sas = generate_container_sas(
        store.account_name, store.container_name, account_key=store.credential.account_key,
        permission=ContainerSasPermissions(create=True, write=True), expiry=datetime.now(UTC) + timedelta(hours=12),
    )
    http = urllib3.PoolManager(maxsize=threads)
    headers = {"x-ms-blob-type": "BlockBlob", "x-ms-version": store.api_version, "Content-Type": "application/dicom"}

    def upload(parts: tuple[str, str, str]) -> int:
        template, first = templates[parts[1]]
        data = template.replace(first, parts[2].encode())
        r = http.request("PUT", f"{store.url}/{'/'.join(parts)}.dcm?{sas}", body=data, headers=headers)
        if r.status != 201:
            raise RuntimeError(f"seeding {parts[2]}: {r.status} {r.data[:200]!r}")
        return len(data)

    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(upload, names))
    return Seeded(study_uids, [f"{a}/{b}/{c}.dcm" for a, b, c in names], total)


def upload_file(store: ContainerClient, name: str, path: Path) -> None:
    """Upload one large file streamed from disk, a block at a time."""
    with open(path, "rb") as f:
        store.upload_blob(name, f, length=path.stat().st_size, overwrite=True, max_concurrency=1)


# ---------------------------------------------------------------------------------------------- exports
@dataclass(frozen=True)
class ExportRun:
    operation_id: str
    seconds: float
    view: dict
    status_seconds: tuple[float, ...] = ()  # how long each status poll took to answer, in order


def start_export(
    host: Host, values: Sequence[str], connection_string: str, container: str,
    deidentification: dict | None = None, extra: dict | None = None,
) -> tuple[str, float]:
    """POST /export (de-identified with `deidentification`); the operation id and the time just before the POST."""
    body = {
        "source": {"type": "identifiers", "settings": {"values": list(values)}},
        "destination": {
            "type": "azureblob",
            "settings": {"connectionString": connection_string, "blobContainerName": container},
        },
    } | ({"deidentification": deidentification} if deidentification else {}) | (extra or {})
    posted = time.time()
    r = requests.post(f"{host.base_url}/export", json=body, timeout=120)
    if r.status_code != 202:
        raise SystemExit(f"POST /export answered {r.status_code}: {r.text}")
    return r.json()["id"], posted


def operation(host: Host, operation_id: str) -> dict:
    r = requests.get(f"{host.base_url}/v1/operations/{operation_id}", timeout=120)
    r.raise_for_status()
    return r.json()


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
    operation_id, posted = start_export(host, values, connection_string, container, deidentification, extra)
    answered = []
    while True:
        asked = time.perf_counter()
        view = operation(host, operation_id)
        answered.append(time.perf_counter() - asked)
        if view["status"] in TERMINAL:
            break
        if time.time() > posted + timeout:
            raise SystemExit(f"export {operation_id} still {view['status']} after {timeout}s")
        time.sleep(poll)
    if view["status"] != "completed":
        raise SystemExit(f"export {operation_id} ended {view['status']}: {view.get('errors')}")
    return ExportRun(operation_id, ended_at(host, operation_id) - posted, view, tuple(answered))


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


# ---------------------------------------------------------------------------------------------- measuring
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


# ---------------------------------------------------------------------------------------------- reporting
def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (also readable as printed)."""
    cells = [[str(c) for c in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), {memory:.1f} GiB memory, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def report(title: str, body: str, notes: str = "", results: Path = RESULTS) -> None:
    """Print `body` and append it to the results file under `title`, with machine, date and command."""
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"\n### {title}\n\n- Command: `{command}`\n- Machine: {machine()}\n- Date: {when}\n\n{body}\n" + (
        f"\n{notes.strip()}\n" if notes.strip() else ""
    )
    print(text)
    with open(results, "a") as f:
        f.write(text)


def add_results_argument(parser) -> None:
    parser.add_argument("--results", type=Path, default=RESULTS, help="append the figures here")
