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
  to continue as new, or the new generation waits to start.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from testkit.host import Host

POINTS = ("expansion", "copy", "continue-as-new")
HUB_NAME = "DicomExportHub"  # host.json's durableTask.hubName: the task hub file is <data dir>/<hub>.sqlite
_TASK_SCHEDULED = 4  # DurableTask.Core EventType


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
        scheduled = {json.loads(event).get("Name") for (event,) in db.execute(
            "SELECT event FROM history WHERE instance_id = ?", (instance_id,))
            if json.loads(event)["EventType"] == _TASK_SCHEDULED}
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


def _ended(hub_file: Path, instance_id: str) -> bool:
    if not hub_file.exists():
        return False
    with closing(_read_only(hub_file)) as db:
        row = db.execute("SELECT runtime_status FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
    return row is not None and row[0] in ("Completed", "Failed", "Terminated", "Canceled")


def _read_only(hub_file: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{hub_file}?mode=ro", uri=True, timeout=10)
