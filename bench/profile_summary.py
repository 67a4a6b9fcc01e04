"""Summarise a py-spy `raw` (collapsed stacks) profile of the host: where its Python time goes, by part.

    .venv/bin/python -m bench.profile_summary PROFILE.txt

Each sample is attributed to the first part (in the order below) whose marker appears in its stack, so the
shares add up to 100 %. Used by `bench/throughput.py --profile`.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

# (part, markers in a stack frame) — checked in this order.
PARTS = [
    ("copy: hashing (MD5, SHA-256)", ("Hashed.__iter__",)),
    ("copy: read from the store (GET)", ("DicomStore.download", "Download.chunks", "_source_chunks", "DicomStore.open")),
    ("copy: write to the destination (PUT)", ("upload (shared/export/upload.py", "upload_blob")),
    ("outputs: decode a frame (pydicom's decoders, codecs)", ("decoded_frames",)),
    ("outputs: encode a frame (codecs)", ("encoders/", "Encoder.encode")),
    ("outputs: render a frame (LUTs, window, PNG/JPEG)", ("shared/outputs/render.py",)),
    ("outputs: write the header, spool, the rest of transcoding", ("shared/outputs/transcode.py",)),
    ("outputs: spool the source and parse its header", ("shared/outputs/instance.py",)),
    ("outputs: the rest of the output step", ("shared/outputs/",)),
    ("copy: the rest of a batch (manifest block, errors.log, futures)", ("BatchCopier", "copy_step", "Manifest.")),
    ("listing the store (expand activity)", ("shared/export/expand.py", "list_page")),
    (
        "orchestrator episodes (SDK replay, JSON)",
        ("durable_functions/", "_invoke_orchestrator", "orchestrations/"),
    ),
    ("the worker's invocation path", ("azure_functions_runtime",)),
    (
        "durable engine, task hub, HTTP (devhost)",
        ("devhost/", "aiohttp", "asyncio"),
    ),
    ("logging", ("logging/__init__.py",)),
    ("thread pools waiting for work", ("concurrent/futures/thread.py",)),
]


def _samples(path: Path) -> Iterator[tuple[str, int]]:
    """(collapsed stack, sample count) for each line of a py-spy raw profile."""
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if n.isdigit():
            yield stack, int(n)


def _shares(counts: Counter[str], most: int | None = None) -> list[tuple[str, float]]:
    total = sum(counts.values())
    return [(key, n / total) for key, n in counts.most_common(most)] if total else []


def summarise(path: Path) -> list[tuple[str, float]]:
    """(part, share of samples) for every part with samples, largest first."""
    counts: Counter[str] = Counter()
    for stack, n in _samples(path):
        part = next(
            (name for name, markers in PARTS if any(m in stack for m in markers)),
            "other",
        )
        counts[part] += n
    return _shares(counts)


def top_frames(path: Path, count: int = 12) -> list[tuple[str, float]]:
    """The functions most often on top of the stack (self time), with their share."""
    counts: Counter[str] = Counter()
    for stack, n in _samples(path):
        frame = stack.split(";")[-1]
        counts[frame.rsplit(":", 1)[0] + ")" if ":" in frame else frame] += n
    return _shares(counts, count)


if __name__ == "__main__":
    for part, share in summarise(Path(sys.argv[1])):
        print(f"{share:6.1%}  {part}")


_EXECUTED = re.compile(
    r"\[(?P<at>[\d-]+ [\d:,]+)\] Executed 'Functions\.(?P<name>export_expand|export_copy_batch)' "
    r"\(Succeeded, InstanceId=(?P<instance>\w+), Id=[\w-]+, Duration=(?P<ms>\d+)ms\)"
)


def timeline(log: str, operation_id: str) -> dict[str, float]:
    """Where an export's wall time went, from the host log's start and end of each activity.

    `first listing`: the expand activity before any copy could start; `tails`: the mean time a copy slot sat
    idle at the end of a generation, waiting for the generation's slowest batch; `between generations`: from
    a generation's last copy to the next one's first (continue-as-new, and any listing not yet done).
    """
    expands, copies = [], []
    for m in _EXECUTED.finditer(log):
        if m["instance"] == operation_id:
            end = datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            (expands if m["name"] == "export_expand" else copies).append((end - int(m["ms"]) / 1000, end))
    copies.sort()
    generations: list[list[tuple[float, float]]] = []
    for start, end in copies:  # a generation's batches all start together, after the last one's ended
        if not generations or start > max(e for _, e in generations[-1]):
            generations.append([])
        generations[-1].append((start, end))
    first = min(expands) if expands else (0.0, 0.0)
    tails = sum(sum(max(e for _, e in g) - e for _, e in g) / len(g) for g in generations)
    gaps = sum(b[0][0] - max(e for _, e in a) for a, b in itertools.pairwise(generations))
    return {
        "generations": len(generations),
        "first listing s": first[1] - first[0],
        "tails s": tails,
        "between generations s": gaps,
    }
