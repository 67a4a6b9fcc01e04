"""Following an export operation: the live progress line, waiting until it ends, and its exit code."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

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


def progress_line(operation: dict, elapsed: float | None, now: datetime | None = None) -> str:
    """'running · 120 exported · 3 skipped · 41.0 files/s · 0:00:03', with the total and an ETA once the service
    knows the total ('· of 600 · ETA 0:00:12'), and what is being retried, if anything:
    '· retrying (attempt 2 of 3, next in 0:00:40): the DICOMweb server cannot be reached ...'."""
    exported, skipped = counts(operation)
    total = (operation.get("results") or {}).get("total")
    parts = [str(operation.get("status", "unknown")), f"{exported:,} exported", f"{skipped:,} skipped"]
    if total is not None:
        parts.append(f"of {int(total):,}")
    if elapsed is not None:
        rate = (exported + skipped) / elapsed if elapsed > 0 else 0.0
        parts += [f"{rate:,.1f} files/s", format_duration(elapsed)]
        if total is not None and rate > 0 and operation.get("status") == "running":
            parts.append(f"ETA {format_duration(max(0, int(total) - exported - skipped) / rate)}")
    retry = operation.get("retrying")
    if retry and not is_terminal(operation):
        attempt = f"attempt {retry.get('attempt')}" + (f" of {retry['maxAttempts']}" if retry.get("maxAttempts")
                                                       else "")
        due = parse_time(retry.get("nextAttemptTime"))
        if due:
            wait = max(0.0, (due - (now or datetime.now(UTC))).total_seconds())
            attempt += f", next in {format_duration(wait)}"
        parts.append(f"retrying ({attempt}): {retry.get('reason')}")
    return " · ".join(parts)


def watch(api: Api, operation_id: str, console: Console, interval: float = 1.0, patience: float = 60.0,
          every: float = 5.0) -> dict:
    """Poll the operation until it ends, showing the progress line live; return its final status.

    On a terminal the line is redrawn in place; otherwise (output redirected) it is printed as a plain
    line every `every` seconds. A long export outlives network blips and host restarts: polls may go
    unanswered (or answer 5xx) for up to `patience` seconds in a row before we give up.
    """
    started = time.monotonic()
    printed = 0.0

    def line(operation: dict) -> str:
        # The service's times may be whole seconds; what we watched ourselves is a floor.
        return progress_line(operation, max(elapsed_seconds(operation) or 0.0, time.monotonic() - started))

    def show(operation: dict, problem: Exception | None = None) -> None:
        nonlocal printed
        text = line(operation) + (f" · no answer ({problem}), trying again" if problem else "")
        if console.is_terminal:
            status.update(text)
        elif time.monotonic() - printed >= every:
            console.print(text, markup=False, soft_wrap=True)
            printed = time.monotonic()

    with console.status("") as status:
        operation = api.wait(operation_id, interval, patience, seen=show)
    console.print(line(operation), markup=False, soft_wrap=True)
    return operation


def transfer_progress(verb: str, console: Console) -> Progress:
    """A progress bar of bytes moved, with a `files` field ('12/40'): 'storing ━━━━ 12/40 files 3.1/9.0 MB …'."""
    return Progress(TextColumn(verb), BarColumn(), TextColumn("{task.fields[files]} files"), DownloadColumn(),
                    TransferSpeedColumn(), TimeElapsedColumn(), console=console)


def status_lines(operation: dict) -> list[str]:
    """The operation as `name  value` lines, each value whole, as `status` and `wait` print it."""
    exported, skipped = counts(operation)
    results = operation.get("results") or {}
    retry = operation.get("retrying") or {}
    rows = [("operation", operation.get("operationId")), ("type", operation.get("type")),
            ("status", operation.get("status")), ("partition", operation.get("partition")),
            ("created", operation.get("createdTime")),
            ("updated", operation.get("lastUpdatedTime")), ("exported", f"{exported:,}"),
            ("skipped", f"{skipped:,}"), ("total", results.get("total")), ("errors.log", results.get("errorHref")),
            ("manifest", results.get("manifestHref")), ("sha256", results.get("manifestSha256")),
            ("retrying", retry.get("reason")), ("attempt", retry.get("attempt")),
            ("next try", retry.get("nextAttemptTime"))]
    lines = [f"{name:<12}{value}" for name, value in rows if value is not None]
    return lines + [f"{'error':<12}{message}" for message in operation.get("errors") or []]


def operations_lines(operations: list[dict]) -> list[str]:
    """A header and one line per operation, narrow enough for an 80-column terminal (`--json` has every field)."""
    lines = [f"{'operation':<32} {'status':<10} {'created (UTC)':<19} {'exported':>8} {'skipped':>7}"]
    for op in operations:
        exported, skipped = counts(op)
        created = parse_time(op.get("createdTime"))
        lines.append(f"{op.get('operationId') or op.get('id')!s:<32} {op.get('status')!s:<10} "
                     f"{created.strftime('%Y-%m-%d %H:%M:%S') if created else '':<19} {exported:>8,} {skipped:>7,}")
    return lines


def errors_lines(href: str, entries: list[dict]) -> list[str]:
    """A title, then errors.log one entry a line: `timestamp<TAB>identifier<TAB>error`, whole."""
    return [f"{href} ({plural(len(entries), 'line')})"] + [
        f"{e['timestamp']}\t{e['identifier']}\t{e['error']}" for e in entries]
