"""Reading a JSON object of a request by property names that are case-insensitive, refusing unknown ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import ClientError


def named_fields(obj: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """`obj` keyed by the canonical spelling of each property; a 400 ClientError naming an unknown one."""
    canonical = {name.lower(): name for name in allowed}
    found = {}
    for key, value in obj.items():
        name = canonical.get(key.lower())
        if name is None:
            where = (f"{path}.{key}" if path else key)[:200]
            raise ClientError(400, f"unknown property '{where}'; expected one of: {', '.join(allowed)}", where)
        found[name] = value
    return found
