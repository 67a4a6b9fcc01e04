"""Load a Python v2 Functions app the way the host does: settings, host.json, then `function_app.py`.

The app's functions are enumerated through the programming model itself
(`FunctionApp.get_functions()`), so what we serve is exactly what the app registered.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_KINDS = {
    "httpTrigger": "http",
    "orchestrationTrigger": "orchestrator",
    "activityTrigger": "activity",
    "entityTrigger": "entity",
}


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json the local host honours."""

    route_prefix: str = "api"
    hub_name: str = "TestHubName"
    max_activities: int = 10
    max_orchestrators: int = 10

    @classmethod
    def from_host_json(cls, data: dict[str, Any]) -> HostConfig:
        extensions = data.get("extensions") or {}
        http = extensions.get("http") or {}
        durable = extensions.get("durableTask") or {}
        prefix = http.get("routePrefix", "api")
        return cls(
            route_prefix=(prefix or "").strip("/"),
            hub_name=durable.get("hubName") or cls.hub_name,
            max_activities=int(durable.get("maxConcurrentActivityFunctions") or cls.max_activities),
            max_orchestrators=int(durable.get("maxConcurrentOrchestratorFunctions") or cls.max_orchestrators),
        )


@dataclass(frozen=True)
class FunctionSpec:
    """One registered function: what triggers it and how to call it."""

    name: str
    kind: str  # 'http' | 'orchestrator' | 'activity' | 'entity' | 'other'
    func: Callable[..., Any]
    trigger_param: str
    client_params: tuple[str, ...] = ()
    route: str | None = None
    methods: tuple[str, ...] = ()  # empty: every method
    auth_level: str = "function"


@dataclass
class LoadedApp:
    app_dir: Path
    config: HostConfig
    settings: dict[str, str]
    functions: dict[str, FunctionSpec] = field(default_factory=dict)

    def of_kind(self, kind: str) -> dict[str, FunctionSpec]:
        return {name: spec for name, spec in self.functions.items() if spec.kind == kind}


def read_settings(app_dir: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """local.settings.json `Values`, overridden by the environment — as `func start` does."""
    values: dict[str, str] = {}
    path = app_dir / "local.settings.json"
    if path.exists():
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
        values = {str(k): str(v) for k, v in (raw.get("Values") or {}).items()}
    values.update(os.environ if environ is None else environ)
    return values


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


def describe(fn: Any) -> FunctionSpec:
    """A FunctionSpec from one `azure.functions` Function object."""
    trigger = fn.get_trigger()
    bindings = [b.get_dict_repr() for b in fn.get_bindings()]
    trigger_repr = next(b for b in bindings if b["type"] == trigger.type)
    kind = _KINDS.get(trigger.type, "other")
    clients = tuple(b["name"] for b in bindings if b["type"] == "durableClient")
    name = fn.get_function_name()
    spec = FunctionSpec(name=name, kind=kind, func=fn.get_user_function(),
                        trigger_param=trigger_repr["name"], client_params=clients)
    if kind == "http":
        route = trigger_repr.get("route") or name
        methods = tuple(_enum_value(m).upper() for m in trigger_repr.get("methods") or ())
        auth = _enum_value(trigger_repr.get("authLevel") or "function").lower()
        spec = FunctionSpec(**{**spec.__dict__, "route": route, "methods": methods, "auth_level": auth})
    return spec


def load_app(app_dir: Path, environ: dict[str, str] | None = None) -> LoadedApp:
    """Apply the app's settings to the process environment, then import its function_app.py."""
    app_dir = app_dir.resolve()
    host_json = app_dir / "host.json"
    config = HostConfig.from_host_json(
        json.loads(host_json.read_text(encoding="utf-8-sig")) if host_json.exists() else {}
    )
    settings = read_settings(app_dir, environ)
    os.environ.update(settings)  # the worker sees app settings as environment variables
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module_spec = importlib.util.spec_from_file_location("function_app", app_dir / "function_app.py")
    if module_spec is None or module_spec.loader is None:
        raise FileNotFoundError(f"no function_app.py in {app_dir}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["function_app"] = module
    module_spec.loader.exec_module(module)
    apps = [v for v in vars(module).values() if hasattr(v, "get_functions") and hasattr(v, "register_functions")]
    if not apps:
        raise RuntimeError(f"{app_dir / 'function_app.py'} defines no FunctionApp")
    loaded = LoadedApp(app_dir=app_dir, config=config, settings=settings)
    for fn in apps[0].get_functions():
        spec = describe(fn)
        if spec.name in loaded.functions:
            raise RuntimeError(f"function name {spec.name!r} is registered twice")
        loaded.functions[spec.name] = spec
    return loaded
