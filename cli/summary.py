"""What `load` did, for a person and for grep: its counts, then one line per file that was not stored and why."""

from __future__ import annotations

from .loader import Report


def load_summary(report: Report) -> list[str]:
    """Counts, then one line per file that was not stored: `failed|skipped<TAB><path><TAB><reason>`, whole."""
    lines = [f"{len(report.stored)} stored, {len(report.failed)} failed, {len(report.skipped)} skipped "
             f"({len(report.not_dicom)} not DICOM, {len(report.duplicates)} duplicates), "
             f"{report.bytes_sent:,} bytes sent" + (f" (paths under {report.root})" if report.root else "")]
    for title, outcomes in (("failed", report.failed), ("skipped", report.skipped)):
        lines += [f"{title}\t{report.show(o.path)}\t{o.reason}" for o in outcomes]
    return lines
