"""Reading a JSON object of a request by property names that are case-insensitive, refusing unknown ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FieldError(ValueError):
    """A request value the server refuses; `field` is the property at fault (e.g. `output.format`)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def named_fields(obj: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """`obj` keyed by the canonical spelling of each property; FieldError naming an unknown one."""
    canonical = {name.lower(): name for name in allowed}
    found = {}
    for key, value in obj.items():
        name = canonical.get(key.lower())
        if name is None:
            where = (f"{path}.{key}" if path else key)[:200]
            raise FieldError(f"unknown property '{where}'; expected one of: {', '.join(allowed)}", where)
        found[name] = value
    return found
