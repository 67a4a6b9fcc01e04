"""Following an export operation: the live progress line, waiting until it ends, and its exit code."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from .api import Api, is_terminal

EXIT_OK, EXIT_SKIPPED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2, 3


def exit_code(operation: dict) -> int:
    """0 completed with nothing skipped, 1 completed with skips, 2 failed or canceled (0 while running)."""
    status = str(operation.get("status", "")).lower()
    if status in ("failed", "canceled"):
        return EXIT_FAILED
    if status in ("completed", "succeeded"):
        return EXIT_SKIPPED if counts(operation)[1] else EXIT_OK
    return EXIT_OK


def counts(operation: dict) -> tuple[int, int]:
    """(exported, skipped) so far; 0 while the service has not reported any."""
    results = operation.get("results") or {}
    return int(results.get("exported") or 0), int(results.get("skipped") or 0)


def parse_time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def elapsed_seconds(operation: dict, now: datetime | None = None) -> float | None:
    """Seconds since the operation was created, up to its last update once it has ended."""
    created = parse_time(operation.get("createdTime"))
    if created is None:
        return None
    end = parse_time(operation.get("lastUpdatedTime")) if is_terminal(operation) else None
    end = end or now or datetime.now(UTC)
    return max(0.0, (end - created).total_seconds())


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 file', '2 files', '1,024 files'; `nouns` for irregular plurals ('studies')."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def progress_line(operation: dict, elapsed: float | None) -> str:
    """'running · 120 exported · 3 skipped · 41.0 files/s · 0:00:03'."""
    exported, skipped = counts(operation)
    parts = [str(operation.get("status", "unknown")), f"{exported:,} exported", f"{skipped:,} skipped"]
    if elapsed is not None:
        rate = (exported + skipped) / elapsed if elapsed > 0 else 0.0
        parts += [f"{rate:,.1f} files/s", format_duration(elapsed)]
    return " · ".join(parts)


def watch(api: Api, operation_id: str, console: Console, interval: float = 1.0, patience: float = 60.0) -> dict:
    """Poll the operation until it ends, showing the progress line live; return its final status.

    A long export outlives network blips and host restarts: polls may go unanswered (or answer 5xx)
    for up to `patience` seconds in a row before we give up.
    """
    started = time.monotonic()

    def line(operation: dict) -> str:
        # The service's times may be whole seconds; what we watched ourselves is a floor.
        return progress_line(operation, max(elapsed_seconds(operation) or 0.0, time.monotonic() - started))

    with console.status("") as status:
        def seen(operation: dict, error: Exception | None) -> None:
            status.update(line(operation) + (f" · no answer ({error}), trying again" if error else ""))

        operation = api.wait(operation_id, interval, patience, seen=seen)
    console.print(line(operation))
    return operation


def transfer_progress(verb: str, console: Console) -> Progress:
    """A progress bar of bytes moved, with a `files` field ('12/40'): 'storing ━━━━ 12/40 files 3.1/9.0 MB …'."""
    return Progress(TextColumn(verb), BarColumn(), TextColumn("{task.fields[files]} files"), DownloadColumn(),
                    TransferSpeedColumn(), TimeElapsedColumn(), console=console)


def status_table(operation: dict) -> Table:
    """The operation as a two-column table, as `status` and `wait` print it."""
    exported, skipped = counts(operation)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    results = operation.get("results") or {}
    rows = [("operation", operation.get("operationId")), ("type", operation.get("type")),
            ("status", operation.get("status")), ("created", operation.get("createdTime")),
            ("updated", operation.get("lastUpdatedTime")), ("exported", f"{exported:,}"),
            ("skipped", f"{skipped:,}"), ("errors.log", results.get("errorHref")),
            ("manifest", results.get("manifestHref"))]
    for name, value in rows:
        if value is not None:
            table.add_row(name, str(value))
    for message in operation.get("errors") or []:
        table.add_row("error", str(message))
    return table


def operations_table(operations: list[dict]) -> Table:
    """One line per operation, narrow enough for an 80-column terminal (`--json` has every field)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0, collapse_padding=True, pad_edge=False)
    for column in ("operation", "status", "created (UTC)"):
        table.add_column(column, no_wrap=True)
    table.add_column("exported", justify="right")
    table.add_column("skipped", justify="right")
    for op in operations:
        exported, skipped = counts(op)
        created = parse_time(op.get("createdTime"))
        table.add_row(str(op.get("operationId") or op.get("id")), str(op.get("status")),
                      created.strftime("%Y-%m-%d %H:%M:%S") if created else "", f"{exported:,}", f"{skipped:,}")
    return table


def errors_table(href: str, entries: list[dict]) -> Table:
    """errors.log, one row per line."""
    table = Table(title=f"{href} ({plural(len(entries), 'line')})", title_justify="left")
    for column in ("timestamp", "identifier", "error"):
        table.add_column(column, overflow="fold", no_wrap=column == "timestamp")
    for entry in entries:
        table.add_row(entry["timestamp"], entry["identifier"], entry["error"])
    return table
