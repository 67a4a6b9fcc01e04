"""DICOM UIDs and the `study[/series[/sop]]` identifiers built from them.

A UID (PS3.5 §9.1) is at most 64 characters of digits and dots, components without leading
zeros. We accept what real archives hold (leading zeros do occur in the wild) but never
anything that could leave the `<study>/<series>/<sop>.dcm` blob layout: only digits and dots,
no empty component, ending in a digit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_UID_LENGTH = 64
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_LEVELS = ("study", "series", "instance")


def uid_problem(value: object) -> str | None:
    """Why `value` is not a valid UID, in words; None when it is one."""
    if not isinstance(value, str):
        return "is not a string"
    if not value:
        return "is empty"
    if len(value) > MAX_UID_LENGTH:
        return f"is {len(value)} characters long; a UID has at most {MAX_UID_LENGTH}"
    if not _UID.fullmatch(value):
        return "must contain only digits and dots, start and end with a digit, without empty components"
    return None


def is_uid(value: object) -> bool:
    return uid_problem(value) is None


@dataclass(frozen=True, order=True)
class Identifier:
    """A study, a series in a study, or one instance: what an export names."""

    study: str
    series: str | None = None
    instance: str | None = None

    @property
    def level(self) -> str:
        return "instance" if self.instance else "series" if self.series else "study"

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in (self.study, self.series, self.instance) if p)

    def __str__(self) -> str:
        return "/".join(self.parts)

    @property
    def blob_prefix(self) -> str:
        """The store prefix listing everything this identifier names."""
        if self.instance:
            return f"{self.study}/{self.series}/{self.instance}.dcm"
        return "/".join(self.parts) + "/"


def parse_identifier(text: object) -> Identifier:
    """Parse `study[/series[/sop]]`, trimming whitespace around parts; ValueError says why not."""
    if not isinstance(text, str):
        raise ValueError(f"identifier {text!r} is not a string")  # noqa: TRY004 - callers report ValueError as a 400
    parts = [p.strip() for p in text.strip().split("/")]
    if len(parts) > 3:
        raise ValueError(f"identifier {text!r} has {len(parts)} parts; expected study[/series[/instance]]")
    for level, part in zip(_LEVELS, parts):
        problem = uid_problem(part)
        if problem:
            raise ValueError(f"identifier {text!r}: the {level} UID {part!r} {problem}")
    return Identifier(*parts)
