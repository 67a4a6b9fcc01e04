"""Crash a local host at a chosen point of an export: freeze it, look at its task hub, kill it there.

The host's process group is frozen with SIGSTOP, so nothing moves while its committed state is
read from the task hub file; if the export is at the wanted point the host is SIGKILLed (what it
had committed is all that survives, as after a power cut of the worker), otherwise it is thawed
with SIGCONT and looked at again a moment later. So the point a kill lands on is known exactly,
not guessed from timing.

Points (the export orchestration's life, one generation after another):
- `expansion`: the expand activity is scheduled and its result not yet committed;
- `copy`: copy activities of the generation are scheduled, at least one without a committed result;
- `continue-as-new`: no activity outstanding; the generation's last results wait for the orchestrator
  to continue as new, or the new generation waits to start;
- `retry-wait`: an activity of the run failed and the orchestrator's timer before its next attempt has not
  fired yet (whatever else is in flight).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time
import uuid
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.blob import ContainerClient

from devhost.history import iso
from testkit.exporting import export_body, export_host, finished, new_container, start, view
from testkit.host import Host, wait_for
from testkit.seed import open_store, put_study

POINTS = ("expansion", "copy", "continue-as-new", "retry-wait")
HUB_NAME = "DicomExportHub"  # host.json's durableTask.hubName: the task hub file is <data dir>/<hub>.sqlite
_TASK_SCHEDULED, _TASK_FAILED = 4, 6  # DurableTask.Core EventType


def point_of(hub_file: Path, instance_id: str) -> str | None:
    """Where the export `instance_id` stands in the committed task hub state (None: none of POINTS).

    Reads the local host's SQLite task hub read-only (devhost/taskhub.py: instances, history,
    messages and queued activity work), as a test of the real extension would read its storage tables.
    """
    with closing(_read_only(hub_file)) as db:
        row = db.execute("SELECT runtime_status FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
        if row is None or row[0] not in ("Running", "ContinuedAsNew"):
            return None
        work = {name for (name,) in db.execute("SELECT name FROM activities WHERE instance_id = ?", (instance_id,))}
        waiting = db.execute("SELECT count(*) FROM messages WHERE instance_id = ?", (instance_id,)).fetchone()[0]
        events = [json.loads(event) for (event,) in db.execute(
            "SELECT event FROM history WHERE instance_id = ?", (instance_id,))]
        scheduled = {e.get("Name") for e in events if e["EventType"] == _TASK_SCHEDULED}
        later = db.execute("SELECT count(*) FROM messages WHERE instance_id = ? AND due > ?",
                           (instance_id, iso(datetime.now(UTC) + timedelta(seconds=0.5)))).fetchone()[0]
    if later and any(e["EventType"] == _TASK_FAILED for e in events):
        return "retry-wait"
    if "export_expand" in work:
        return "expansion"
    if "export_copy_batch" in work:
        return "copy"
    if waiting and (row[0] == "ContinuedAsNew" or "export_copy_batch" in scheduled):
        return "continue-as-new"
    return None


def kill_at(host: Host, instance_id: str, point: str, timeout: float = 60.0, pause: float = 0.01) -> int:
    """SIGKILL `host` while export `instance_id` is at `point`; returns how many looks it took.

    AssertionError when the export ends, or `timeout` passes, before it is caught there.
    """
    assert point in POINTS, point
    hub_file = host.data_dir / f"{HUB_NAME}.sqlite"
    process = host.process
    assert process is not None, "the host is started"
    group = process.pid
    deadline = time.monotonic() + timeout
    looks = 0
    while time.monotonic() < deadline:
        time.sleep(random.uniform(0, pause))
        os.killpg(group, signal.SIGSTOP)
        looks += 1
        try:
            if hub_file.exists() and point_of(hub_file, instance_id) == point:
                host.kill()  # SIGKILL reaches stopped processes too
                return looks
        finally:
            if process.poll() is None:
                os.killpg(group, signal.SIGCONT)
        if _ended(hub_file, instance_id):
            break
    raise AssertionError(f"export {instance_id} was never caught at {point} ({looks} looks)")


@dataclass(frozen=True)
class KilledExport:
    """How an export through a repeatedly killed host ended, and what it had to export."""

    operation: dict  # the 202 body: id, href
    done: dict  # the operation once terminal
    destination: ContainerClient
    stored: dict[str, bytes]  # the study's blob names → bytes
    host: Host  # stopped; its log spans every start


def killed_export(folder: Path, conn: str, instances: int, series_count: int, kills: Sequence[tuple[str, int]],
                  extra: dict | None = None) -> KilledExport:
    """Store a study of `instances` tiny files and export it (with the request members `extra`) in generations
    of 3 × 10, SIGKILLing the host at each (point, once that many files are exported) of `kills` and restarting
    it in place (same data dir, same port: the operation's href stays valid)."""
    store_container = f"store-{uuid.uuid4().hex[:10]}"
    study, stored = put_study(open_store(conn, store_container), instances, series_count=series_count, size=32)
    destination = new_container(conn)
    host = export_host(folder / "hub", conn, store_container, Export__BatchSize="10",
                       Export__MaxParallelBatches="3").start()
    try:
        operation = start(host, export_body([study], destination, conn) | (extra or {}))
        for point, progress in kills:
            wait_for(lambda: view(operation["href"])["results"]["exported"] >= progress,  # noqa: B023
                     timeout=120, message=f"{progress} files exported")
            kill_at(host, operation["id"], point)
            host.start()
        done = finished(operation["href"], timeout=300)
    finally:
        host.stop()
    return KilledExport(operation, done, destination, stored, host)


def _ended(hub_file: Path, instance_id: str) -> bool:
    if not hub_file.exists():
        return False
    with closing(_read_only(hub_file)) as db:
        row = db.execute("SELECT runtime_status FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
    return row is not None and row[0] in ("Completed", "Failed", "Terminated", "Canceled")


def _read_only(hub_file: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{hub_file}?mode=ro", uri=True, timeout=10)
