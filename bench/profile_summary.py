"""Summarise a py-spy `raw` (collapsed stacks) profile of the host: where its Python time goes, by part.

    .venv/bin/python bench/profile_summary.py PROFILE.txt

Each sample is attributed to the first part (in the order below) whose marker appears in its stack, so the
shares add up to 100 %. Used by `bench/throughput.py --profile`.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

# (part, markers in a stack frame) — checked in this order.
PARTS = [
    ("copy: read from the store (GET)", ("DicomStore.download", "Download.chunks", "_source_chunks")),
    ("copy: write to the destination (PUT)", ("upload_blob",)),
    ("copy: other (threads, futures, errors.log)", ("BatchCopier",)),
    ("listing the store (expand activity)", ("shared/expand.py", "list_page")),
    (
        "orchestrator episodes (SDK replay, JSON)",
        ("durable_functions/", "_invoke_orchestrator", "orchestrations/"),
    ),
    (
        "durable engine (dispatch, task hub SQLite)",
        ("devhost/engine.py", "devhost/taskhub.py", "devhost/replay.py"),
    ),
    ("HTTP API (status polls, durable client)", ("devhost/server.py", "devhost/durable_api.py", "aiohttp")),
    ("logging", ("logging/__init__.py",)),
]


def summarise(path: Path) -> list[tuple[str, float]]:
    """(part, share of samples) for every part with samples, largest first."""
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        part = next(
            (name for name, markers in PARTS if any(m in stack for m in markers)),
            "other (idle loops, start-up)",
        )
        counts[part] += int(n)
    return [(part, n / total) for part, n in counts.most_common()] if total else []


def top_frames(path: Path, count: int = 12) -> list[tuple[str, float]]:
    """The functions most often on top of the stack (self time), with their share."""
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        frame = stack.split(";")[-1]
        counts[frame.rsplit(":", 1)[0] + ")" if ":" in frame else frame] += int(n)
    return [(frame, n / total) for frame, n in counts.most_common(count)] if total else []


if __name__ == "__main__":
    for part, share in summarise(Path(sys.argv[1])):
        print(f"{share:6.1%}  {part}")
