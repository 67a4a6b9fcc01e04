"""One structured log line per export start, per batch and per end, for operators' queries.

Each line is `<event> <JSON object>`, e.g.

    export.batch {"batch":0,"durationMs":812,"exported":100,"generation":1,"instances":100,"operationId":"…","outcome":"copied","skipped":0}

so it reads in a log file, and in Application Insights, where it is a trace, KQL takes the fields with
`parse_json(substring(message, indexof(message, "{")))` (docs/DEPLOY.md has the queries). The same fields go
to the record as `extra` (`custom_dimensions`) for OpenTelemetry exporters that map them to columns.
Fields are counts, ids and durations only: never a credential, and no patient identifier.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from shared.secrets import scrub

log = logging.getLogger("export.events")

STARTED = "export.started"
BATCH = "export.batch"
ENDED = "export.ended"


def emit(event: str, level: int = logging.INFO, /, **fields: Any) -> str:
    """Log `event` with `fields` as one line; the line, for tests."""
    line = f"{event} {json.dumps(fields, sort_keys=True, separators=(',', ':'), default=str)}"
    log.log(level, line, extra={"custom_dimensions": {"event": event, **fields}})
    return line


@contextmanager
def timed_batch(**fields: Any) -> Iterator[dict[str, Any]]:
    """Log one `export.batch` line when the block ends: `outcome` copied (with what the block put in the yielded
    dict) or failed (with the reason, secrets scrubbed, and the exception re-raised), and `durationMs`."""
    started = time.monotonic()
    result: dict[str, Any] = {}
    try:
        yield result
    except Exception as error:
        emit(BATCH, logging.WARNING, **fields, outcome="failed", error=scrub(error)[:500],
             durationMs=round((time.monotonic() - started) * 1000))
        raise
    emit(BATCH, **fields, **result, outcome="copied", durationMs=round((time.monotonic() - started) * 1000))


def duration_ms(created_time: str, now: datetime) -> int:
    """Milliseconds from an operation's createdTime (ISO 8601, UTC) to `now` (UTC; naive is taken as UTC)."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    return round((now - datetime.fromisoformat(created_time)).total_seconds() * 1000)
