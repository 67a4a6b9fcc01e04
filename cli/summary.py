"""What `load` did, for a person: its counts, then one line per file that was not stored and why."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from .loader import Report


def load_summary(report: Report, console: Console) -> None:
    """What `load` did: counts, then one line per file that was not stored, with the reason."""
    console.print(f"[bold]{len(report.stored)} stored[/], {len(report.failed)} failed, {len(report.skipped)} "
                  f"skipped ({len(report.not_dicom)} not DICOM, {len(report.duplicates)} duplicates), "
                  f"{report.bytes_sent:,} bytes sent")
    under = f" (under {report.root})" if report.root else ""
    for title, outcomes in (("failed", report.failed), ("skipped", report.skipped)):
        if outcomes:
            table = Table(title=f"{title}{under}", title_justify="left", box=box.SIMPLE_HEAD)
            table.add_column("file", overflow="fold")
            table.add_column("reason", overflow="fold")
            for o in outcomes:
                table.add_row(report.show(o.path), o.reason)
            console.print(table)
