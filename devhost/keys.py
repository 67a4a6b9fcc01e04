"""Function keys, kept as Azure keeps them with `AzureWebJobsSecretStorageType=files`.

`<secrets dir>/host.json`:
    {"masterKey": {"name": "master", "value": "..."},
     "functionKeys": [{"name": "default", "value": "..."}],
     "systemKeys": [{"name": "durabletask_extension", "value": "..."}]}
and optionally `<secrets dir>/<function name>.json`: {"keys": [{"name": "default", "value": "..."}]}.

No host.json: no keys, every route open — as `func start` is.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DURABLE_SYSTEM_KEY = "durabletask_extension"


def _values(entries: Any) -> list[str]:
    if isinstance(entries, dict):
        entries = [entries]
    return [str(e["value"]) for e in entries or [] if isinstance(e, dict) and e.get("value")]


def _matches(candidate: str | None, keys: list[str]) -> bool:
    if not candidate:
        return False
    # Compare against every key in constant time, so timing says nothing about which was close.
    return any([hmac.compare_digest(candidate.encode(), k.encode()) for k in keys])  # noqa: C419


@dataclass
class Keys:
    master: list[str] = field(default_factory=list)
    host_function: list[str] = field(default_factory=list)
    system: dict[str, list[str]] = field(default_factory=dict)
    per_function: dict[str, list[str]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.master or self.host_function)

    @classmethod
    def load(cls, secrets_dir: Path) -> Keys:
        host = secrets_dir / "host.json"
        if not host.exists():
            return cls()
        data = json.loads(host.read_text(encoding="utf-8-sig"))
        system: dict[str, list[str]] = {}
        for entry in data.get("systemKeys") or []:
            system.setdefault(entry.get("name", ""), []).extend(_values(entry))
        per_function = {
            p.stem: _values(json.loads(p.read_text(encoding="utf-8-sig")).get("keys"))
            for p in secrets_dir.glob("*.json") if p.name != "host.json"
        }
        return cls(_values(data.get("masterKey")), _values(data.get("functionKeys")), system, per_function)

    def system_key(self, name: str = DURABLE_SYSTEM_KEY) -> str | None:
        found = self.system.get(name) or self.master
        return found[0] if found else None

    def allows(self, level: str, presented: str | None, function: str | None = None) -> bool:
        """Whether `presented` grants `level` ('anonymous', 'function', 'admin', 'system') access."""
        if not self.enabled or level == "anonymous":
            return True
        if _matches(presented, self.master):
            return True
        if level == "function":
            allowed = self.host_function + self.per_function.get(function or "", [])
            return _matches(presented, allowed)
        if level == "system":
            return _matches(presented, self.system.get(DURABLE_SYSTEM_KEY, []))
        return False
