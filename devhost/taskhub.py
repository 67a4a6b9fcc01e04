"""The task hub: orchestration instances, their history, and queued work, in one SQLite database (WAL).

Like the Durable Task Framework's storage providers it is a set of queues plus an event log: `messages` are
events waiting for an orchestrator episode (activity results, fired timers, raised events, starts, terminate),
`activities` is work waiting for the activity pool, `history` is each instance's current generation. Callers
group their writes in `transaction()`, so each state change is all-or-nothing, across crashes too.
"""

from __future__ import annotations

import base64
import fcntl
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    runtime_status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_time TEXT NOT NULL,
    last_updated_time TEXT NOT NULL,
    parent TEXT
);
CREATE INDEX IF NOT EXISTS instances_by_created ON instances (created_time, instance_id);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    due TEXT,
    event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT
);
"""


@dataclass
class InstanceRecord:
    """One orchestration instance's status row. JSON values (input, output, custom status) are kept as text."""

    instance_id: str
    name: str
    execution_id: str
    runtime_status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: str
    last_updated_time: str
    parent: dict[str, Any] | None = None  # {"instanceId", "executionId", "taskId", "name"} of a sub-orchestration

    def row(self) -> tuple[Any, ...]:
        return tuple(json.dumps(v) if f.name == "parent" and v is not None else v
                     for f, v in ((f, getattr(self, f.name)) for f in fields(self)))

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> InstanceRecord:
        return replace(cls(*row), parent=json.loads(row[-1]) if row[-1] else None)


@dataclass
class Message:
    id: int
    instance_id: str
    execution_id: str | None  # None: for whichever generation is current (raised events, terminate, ...)
    due: str | None
    event: dict[str, Any]


@dataclass
class ActivityWork:
    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


_COLUMNS = ", ".join(f.name for f in fields(InstanceRecord))


class TaskHubInUse(RuntimeError):
    """Another host process has this task hub open."""


class TaskHub:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Two hosts on one task hub would each run the other's work: hold an exclusive lock, which the
        # operating system releases when the process ends, however it ends.
        self._lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - held for the hub's lifetime
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise TaskHubInUse(f"task hub {path} is in use by another host process") from None
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a process crash (kill -9); only power loss may drop the last ones.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        # Ids are handed out here so that a batch is one executemany (one round through SQLite, not one each).
        self._next_message_id = self._max_id("messages") + 1
        self._next_activity_id = self._max_id("activities") + 1

    def _max_id(self, table: str) -> int:
        return self.db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]

    def close(self) -> None:
        self.db.close()
        self._lock.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- instances
    def put_instance(self, record: InstanceRecord) -> None:
        marks = ", ".join("?" * len(fields(InstanceRecord)))
        self.db.execute(f"INSERT OR REPLACE INTO instances ({_COLUMNS}) VALUES ({marks})", record.row())

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
        return InstanceRecord.from_row(row) if row else None

    def active_instances(self, terminal: Iterable[str]) -> list[InstanceRecord]:
        done = list(terminal)
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM instances WHERE runtime_status NOT IN "
                               f"({', '.join('?' * len(done))})", done)
        return [InstanceRecord.from_row(r) for r in rows]

    def query_instances(self, statuses: list[str] | None, created_from: str | None, created_to: str | None,
                        prefix: str | None, page_size: int, token: str | None) -> tuple[list[InstanceRecord], str | None]:
        """A page of instances ordered by creation, and the continuation token of the next page (None: last)."""
        where: list[str] = []
        args: list[Any] = []
        if statuses:
            where.append(f"runtime_status IN ({', '.join('?' * len(statuses))})")
            args += statuses
        if created_from:
            where.append("created_time >= ?")
            args.append(created_from)
        if created_to:
            where.append("created_time <= ?")
            args.append(created_to)
        if prefix:
            where.append("substr(instance_id, 1, ?) = ?")
            args += [len(prefix), prefix]
        if token:
            after = json.loads(base64.urlsafe_b64decode(token.encode()))
            if not (isinstance(after, list) and len(after) == 2 and all(isinstance(a, str) for a in after)):
                raise ValueError("not a continuation token of this task hub")
            where.append("(created_time, instance_id) > (?, ?)")
            args += after
        sql = f"SELECT {_COLUMNS} FROM instances"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_time, instance_id LIMIT ?"
        rows = [InstanceRecord.from_row(r) for r in self.db.execute(sql, [*args, page_size + 1])]
        if len(rows) <= page_size:
            return rows, None
        last = rows[page_size - 1]
        next_token = base64.urlsafe_b64encode(json.dumps([last.created_time, last.instance_id]).encode()).decode()
        return rows[:page_size], next_token

    def delete_instance(self, instance_id: str) -> None:
        """The instance and everything it owns: history, queued messages and activity work."""
        for table in ("instances", "history", "messages", "activities"):
            self.db.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))

    def delete_messages_of(self, instance_id: str) -> None:
        self.db.execute("DELETE FROM messages WHERE instance_id = ?", (instance_id,))

    def delete_activities_of(self, instance_id: str) -> None:
        self.db.execute("DELETE FROM activities WHERE instance_id = ?", (instance_id,))

    # -- history
    def load_history(self, instance_id: str) -> list[str]:
        rows = self.db.execute("SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,))
        return [r[0] for r in rows]

    def append_history(self, instance_id: str, first_seq: int, events: list[str]) -> None:
        self.db.executemany("INSERT INTO history (instance_id, seq, event) VALUES (?, ?, ?)",
                            [(instance_id, first_seq + i, e) for i, e in enumerate(events)])

    def reset_history(self, instance_id: str) -> None:
        self.db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))

    # -- messages
    def add_messages(self, messages: list[tuple[str, str | None, str | None, dict[str, Any]]]) -> list[Message]:
        """Queue (instance_id, execution_id, due, event) messages; returns them with their ids."""
        first, self._next_message_id = self._next_message_id, self._next_message_id + len(messages)
        added = [Message(first + i, *m) for i, m in enumerate(messages)]
        self.db.executemany("INSERT INTO messages (id, instance_id, execution_id, due, event) VALUES (?, ?, ?, ?, ?)",
                            [(m.id, m.instance_id, m.execution_id, m.due, json.dumps(m.event)) for m in added])
        return added

    def delete_messages(self, ids: list[int]) -> None:
        self.db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    def messages(self, instance_id: str | None = None) -> list[Message]:
        """Queued messages in arrival order: all of them, or one instance's."""
        where, args = ("WHERE instance_id = ?", (instance_id,)) if instance_id else ("", ())
        rows = self.db.execute(f"SELECT id, instance_id, execution_id, due, event FROM messages {where} ORDER BY id",
                               args)
        return [Message(i, iid, ex, due, json.loads(ev)) for i, iid, ex, due, ev in rows]

    # -- activity work
    def add_activities(self, work: list[tuple[str, str, int, str, str | None]]) -> list[ActivityWork]:
        """Queue (instance_id, execution_id, task_id, name, input) activity calls; returns them with their ids."""
        first, self._next_activity_id = self._next_activity_id, self._next_activity_id + len(work)
        added = [ActivityWork(first + i, *item) for i, item in enumerate(work)]
        self.db.executemany("INSERT INTO activities (id, instance_id, execution_id, task_id, name, input) "
                            "VALUES (?, ?, ?, ?, ?, ?)", [(a.id, a.instance_id, a.execution_id, a.task_id, a.name,
                                                          a.input) for a in added])
        return added

    def delete_activities(self, ids: list[int]) -> None:
        self.db.executemany("DELETE FROM activities WHERE id = ?", [(i,) for i in ids])

    def all_activities(self) -> list[ActivityWork]:
        rows = self.db.execute("SELECT id, instance_id, execution_id, task_id, name, input FROM activities ORDER BY id")
        return [ActivityWork(*r) for r in rows]
