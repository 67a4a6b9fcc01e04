"""What an output step yields, and how it declines an instance."""

from __future__ import annotations

from dataclasses import dataclass


class NotProduced(Exception):
    """This instance cannot be written in the asked format; the message says why and quotes nothing from it."""


@dataclass(frozen=True)
class OutputFile:
    """One file to write: `name` is relative to `<op>/results/`, e.g. `<study>/<series>/<sop>/1.png`."""

    name: str
    data: bytes
    content_type: str
    frame: int | None = None  # the frame a rendered image shows, from 1
