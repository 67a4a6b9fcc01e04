"""ASP.NET Core route templates as Azure Functions uses them: `{name}`, `{name?}`, `{name:int}`, `{*rest}`.

Matching is case-insensitive on literal segments; when several templates match, the more
specific wins (literals before parameters, constrained before free, catch-all last), as ASP.NET orders them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_PARAM = re.compile(r"^\{(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<constraints>:.*?)?(?P<opt>\?)?\}$")
_GUID = r"(?:\{)?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}(?:\})?"
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?i:true|false)",
    "guid": _GUID,
    "alpha": r"[A-Za-z]+",
    "decimal": r"-?\d+(?:\.\d+)?",
    "double": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "float": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "datetime": r"\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+Z?)?",
}


class RouteTemplateError(ValueError):
    pass


def _constraint_check(spec: str):
    """A predicate for one constraint such as `int`, `minlength(3)`, `regex(^a+$)`."""
    name, _, arg = spec.partition("(")
    arg = arg.removesuffix(")")
    name = name.lower()
    if name in _CONSTRAINTS:
        pattern = re.compile(_CONSTRAINTS[name])
        return lambda v: pattern.fullmatch(v) is not None
    if name in ("minlength", "maxlength", "length"):
        bounds = [int(x) for x in arg.split(",")]
        lo, hi = {"minlength": (bounds[0], None), "maxlength": (None, bounds[0])}.get(
            name, (bounds[0], bounds[-1])
        )
        return lambda v: (lo is None or len(v) >= lo) and (hi is None or len(v) <= hi)
    if name in ("min", "max", "range"):
        bounds = [int(x) for x in arg.split(",")]
        lo, hi = {"min": (bounds[0], None), "max": (None, bounds[0])}.get(name, (bounds[0], bounds[-1]))

        def in_range(v: str) -> bool:
            try:
                n = int(v)
            except ValueError:
                return False
            return (lo is None or n >= lo) and (hi is None or n <= hi)

        return in_range
    if name == "regex":
        pattern = re.compile(arg)
        return lambda v: pattern.search(v) is not None
    raise RouteTemplateError(f"unsupported route constraint {spec!r}")


@dataclass
class _Segment:
    literal: str | None = None
    name: str | None = None
    optional: bool = False
    catch_all: bool = False
    checks: tuple = ()


@dataclass
class Route[T]:
    template: str
    target: T
    segments: list[_Segment]

    @property
    def precedence(self) -> tuple:
        # Lower sorts first: literals (0) before constrained (1) before free (2) before catch-all (3).
        ranks = []
        for s in self.segments:
            ranks.append(0 if s.literal is not None else 3 if s.catch_all else 1 if s.checks else 2)
        return tuple(ranks) + (4,)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        i = 0
        for seg in self.segments:
            if seg.catch_all:
                rest = "/".join(parts[i:])
                if rest or seg.optional:
                    if rest:
                        params[seg.name or ""] = rest
                    return params
                return None
            if i >= len(parts):
                if seg.optional:
                    continue
                return None
            value = parts[i]
            if seg.literal is not None:
                if value.lower() != seg.literal.lower():
                    return None
            else:
                if not value or not all(check(value) for check in seg.checks):
                    return None
                params[seg.name or ""] = value
            i += 1
        return params if i == len(parts) else None


def _split_constraints(text: str) -> list[str]:
    """`:int:min(1)` → ['int', 'min(1)']; colons inside parentheses (regexes) stay put; `{{`/`}}` unescaped."""
    found, depth, current = [], 0, ""
    for ch in text.replace("{{", "{").replace("}}", "}"):
        depth += (ch == "(") - (ch == ")")
        if ch == ":" and depth == 0:
            if current:
                found.append(current)
            current = ""
        else:
            current += ch
    return found + ([current] if current else [])


def parse_template[T](template: str, target: T) -> Route[T]:
    segments = []
    for raw in [p for p in template.strip("/").split("/") if p]:
        m = _PARAM.match(raw)
        if raw.startswith("{") and not m:
            raise RouteTemplateError(f"unsupported route segment {raw!r} in {template!r}")
        if m:
            constraints = _split_constraints(m["constraints"] or "")
            segments.append(_Segment(name=m["name"], optional=bool(m["opt"]), catch_all=bool(m["star"]),
                                     checks=tuple(_constraint_check(c) for c in constraints)))
        else:
            segments.append(_Segment(literal=raw))
    return Route(template, target, segments)


class RouteTable[T]:
    """Templates to targets; `match(path)` gives the most specific target and its route values."""

    def __init__(self) -> None:
        self._routes: list[Route[T]] = []

    def add(self, template: str, target: T) -> None:
        self._routes.append(parse_template(template, target))
        self._routes.sort(key=lambda r: r.precedence)

    def match(self, path: str) -> list[tuple[T, dict[str, str]]]:
        """Every matching target, most specific first (callers filter further, e.g. by method)."""
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        found = []
        for route in self._routes:
            params = route.match(parts)
            if params is not None:
                found.append((route.target, params))
        return found
