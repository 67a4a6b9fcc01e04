"""Load a Python v2 Functions app the way the host does: settings, host.json, then the worker's indexing.

The app's functions are what Azure's Python worker reports in its metadata response, so what we serve is
exactly what the worker indexed, and an app it refuses is refused here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .worker import Worker, WorkerRefused, raw_bindings

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
    # The extension's default outside Consumption: 10 per core (AzureStorageDurabilityProviderFactory).
    max_activities: int = 10 * (os.cpu_count() or 1)
    max_orchestrators: int = 10 * (os.cpu_count() or 1)
    # The host's default outside Consumption (Flex, Premium, Dedicated): 30 minutes; None: unbounded (-1).
    function_timeout: float | None = 1800.0

    @classmethod
    def from_host_json(cls, data: dict[str, Any]) -> HostConfig:
        extensions = data.get("extensions") or {}
        http = extensions.get("http") or {}
        durable = extensions.get("durableTask") or {}
        prefix = http.get("routePrefix", "api")
        timeout = data.get("functionTimeout")
        return cls(
            route_prefix=(prefix or "").strip("/"),
            hub_name=durable.get("hubName") or cls.hub_name,
            max_activities=int(durable.get("maxConcurrentActivityFunctions") or cls.max_activities),
            max_orchestrators=int(durable.get("maxConcurrentOrchestratorFunctions") or cls.max_orchestrators),
            function_timeout=cls.function_timeout if timeout is None else parse_timespan(str(timeout)),
        )


def parse_timespan(text: str) -> float | None:
    """Seconds in a .NET TimeSpan such as `00:05:00` or `1.02:00:00`; None for `-1` (no limit)."""
    if text.strip() == "-1":
        return None
    head, _, rest = text.strip().partition(":")
    days, _, hours = head.rpartition(".")
    minutes, seconds = rest.split(":")
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def format_timespan(seconds: float) -> str:
    """A duration as .NET's TimeSpan prints it: `hh:mm:ss`, with `d.` before it from a day on."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}.{clock}" if days else clock


@dataclass(frozen=True)
class FunctionSpec:
    """One function as the worker indexed it: what triggers it, its bindings, and its id for invocations."""

    name: str
    kind: str  # 'http' | 'orchestrator' | 'activity' | 'entity' | 'other'
    function_id: str
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
    worker: Worker
    functions: dict[str, FunctionSpec] = field(default_factory=dict)

    def of_kind(self, kind: str) -> dict[str, FunctionSpec]:
        """Functions of one kind by the name the host knows them by (a durable binding may rename them)."""
        return {name: spec for name, spec in self.functions.items() if spec.kind == kind}


def read_settings(app_dir: Path, environ: dict[str, str] | None = None,
                  settings_file: Path | None = None) -> dict[str, str]:
    """local.settings.json `Values` (or `settings_file`'s), overridden by the environment — as `func start` does."""
    values: dict[str, str] = {}
    path = settings_file or app_dir / "local.settings.json"
    if path.exists():
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
        values = {str(k): str(v) for k, v in (raw.get("Values") or {}).items()}
    values.update(os.environ if environ is None else environ)
    return values


def describe(name: str, function_id: str, bindings: list[dict[str, Any]]) -> FunctionSpec:
    """A FunctionSpec from the bindings the worker reported for one function (function.json's shape)."""
    trigger = next((b for b in bindings if str(b.get("type", "")).endswith("Trigger")), None)
    if trigger is None:
        raise RuntimeError(f"function {name!r} has no trigger binding")
    kind = _KINDS.get(trigger["type"], "other")
    clients = tuple(b["name"] for b in bindings if b["type"] == "durableClient")
    spec = FunctionSpec(name=name, kind=kind, function_id=function_id, trigger_param=trigger["name"],
                        client_params=clients)
    if kind == "http":
        methods = tuple(str(m).upper() for m in trigger.get("methods") or ())
        spec = replace(spec, route=trigger.get("route") or name, methods=methods,
                       auth_level=str(trigger.get("authLevel") or "function").lower())
    elif kind in ("orchestrator", "activity", "entity"):
        # The Durable extension knows these by the binding's name property, else the function's name.
        durable_name = trigger.get({"orchestrator": "orchestration"}.get(kind, kind))
        spec = replace(spec, name=durable_name or name)
    return spec


async def load_app(app_dir: Path, environ: dict[str, str] | None = None,
                   settings_file: Path | None = None) -> LoadedApp:
    """Put the app's settings in the environment, then have Azure's Python worker index and load the app.

    WorkerRefused carries the worker's own message when it refuses the app.
    """
    app_dir = app_dir.resolve()
    host_json = app_dir / "host.json"
    config = HostConfig.from_host_json(
        json.loads(host_json.read_text(encoding="utf-8-sig")) if host_json.exists() else {}
    )
    settings = read_settings(app_dir, environ, settings_file)
    os.environ.update(settings)  # the worker sees app settings as environment variables, before init
    worker = Worker(app_dir)
    loaded = LoadedApp(app_dir=app_dir, config=config, settings=settings, worker=worker)
    for metadata in await worker.start():
        spec = describe(metadata.name, metadata.function_id, raw_bindings(metadata))
        if spec.name in loaded.functions:
            raise WorkerRefused(f"function name {spec.name!r} is registered twice")
        loaded.functions[spec.name] = spec
    return loaded
