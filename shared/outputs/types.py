"""What an output step yields, and how it declines an instance."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.errors import Skipped


class NotProduced(Skipped):
    """This instance cannot be written in the asked format: skipped and logged, the batch goes on.

    The message says why and quotes nothing from the file.
    """


@dataclass(frozen=True)
class OutputFile:
    """One file to write: `name` is relative to `<op>/results/`, e.g. `<study>/<series>/<sop>/1.png`.

    `chunks` gives its bytes a block at a time (once): a transcoded instance is never whole in memory.
    """

    name: str
    chunks: Iterable[bytes]
    content_type: str
    frame: int | None = None  # the frame a rendered image shows, from 1
