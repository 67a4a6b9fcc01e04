"""Reporting the benchmarks' figures: Markdown tables, the machine, and bench/RESULTS.md with the command."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil

from testkit.host import ROOT

RESULTS = ROOT / "bench" / "RESULTS.md"


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
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", *invocation(), *sys.argv[1:]])
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"\n### {title}\n\n- Command: `{command}`\n- Machine: {machine()}\n- Date: {when}\n\n{body}\n" + (
        f"\n{notes.strip()}\n" if notes.strip() else ""
    )
    print(text)
    with open(results, "a") as f:
        f.write(text)


def invocation() -> list[str]:
    """How this benchmark was started: `-m bench.<name>` (run from the project folder), else its path."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return ["-m", spec.name] if spec else [sys.argv[0]]


def add_results_argument(parser) -> None:
    parser.add_argument("--results", type=Path, default=RESULTS, help="append the figures here")
