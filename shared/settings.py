"""App settings, read the way the Functions host hands them over: as environment variables.

Nested .NET-style keys are written `Section__Key` in Azure; local.settings.json may also spell
them `Section:Key`, which Core Tools passes through unchanged. Both spellings are accepted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from shared.errors import Misconfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def get(name: str, default: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The setting `name` (written with `__`), or its `:` spelling, or `default`."""
    source = os.environ if env is None else env
    for key in (name, name.replace("__", ":")):
        if key in source:
            return source[key]
    return default


def get_bool(name: str, default: bool = False, env: Mapping[str, str] | None = None) -> bool:
    value = get(name, None, env)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise Misconfigured(f"setting {name} must be true or false, not {value!r}")


def get_int(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    return _get_number(name, default, env, int, "an integer")


def get_float(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    return _get_number(name, default, env, float, "a number")


def _get_number[N: (int, float)](name: str, default: N, env: Mapping[str, str] | None, parse: Callable[[str], N],
                                 kind: str) -> N:
    value = get(name, None, env)
    if value is None or not value.strip():
        return default
    try:
        return parse(value)
    except ValueError:
        raise Misconfigured(f"setting {name} must be {kind}, not {value!r}") from None
