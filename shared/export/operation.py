"""The DICOM operation resource, computed from the durable instance's status.

The durable status (runtimeStatus, customStatus, input, output, times) is the source of truth;
this module only reshapes it:

    {"operationId", "type": "export", "createdTime", "lastUpdatedTime", "status",
     "results": {"errorHref", "exported", "skipped", "total" (once known: Checkpoint.total),
                 "manifestHref", "manifestSha256", "manifestSize" (once committed)},
     "partition" (an export of a DICOMweb store's data partition),
     "retrying": {"reason", "attempt", "maxAttempts", "nextAttemptTime"} (while a step is being retried),
     "errors": [...] (failed only)}

A suspended instance is `paused`. The manifest's digest and size live here, outside the destination
container, so that rewriting a file and its manifest line there cannot go unnoticed.

`createdTime` comes from the checkpoint (the first generation's), because each continue-as-new
starts a new execution. Progress comes from the custom status each generation publishes, or from
the checkpoint input before the first one. Nothing secret is read: the checkpoint's destination
is never copied, and failure messages are scrubbed once more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.export.checkpoint import Checkpoint
from shared.export.lanes import summed
from shared.secrets import scrub

ORCHESTRATOR = "export_orchestrator"
_OPERATION_ID = re.compile(r"[0-9a-f]{32}")
_RUNTIME_TO_STATUS = {
    "Pending": "notStarted",
    "Running": "running",
    "ContinuedAsNew": "running",
    "Suspended": "paused",
    "Completed": "completed",
    "Failed": "failed",
    "Terminated": "canceled",
    "Canceled": "canceled",
}
STATUSES = ("notStarted", "running", "paused", "completed", "succeeded", "failed", "canceled")
TERMINAL = {"completed", "succeeded", "failed", "canceled"}
# "Orchestrator function 'x' failed: Activity function 'y' failed: CopyFailed: <reason>" → "<reason>"
_FAILURE_PREFIX = re.compile(r"^\s*(?:(?:Orchestrator|Activity) function '[^']*' failed:\s*|(?:[a-z_]\w*\.)*[A-Z]\w*:\s+)+")


def is_operation_id(text: str) -> bool:
    """A GUID without dashes, lowercase: the only shape of operation id this service issues."""
    return bool(_OPERATION_ID.fullmatch(text))


def status_name(runtime_status: str | None, version: str) -> str:
    name = _RUNTIME_TO_STATUS.get(runtime_status or "", "running")
    return "succeeded" if name == "completed" and version == "v2" else name


def runtime_statuses(status: str) -> list[str]:
    """The durable runtime statuses one operation status stands for (for listing filters)."""
    wanted = "completed" if status == "succeeded" else status
    return [runtime for runtime, name in _RUNTIME_TO_STATUS.items() if name == wanted]


def is_export(durable_status: Mapping[str, Any]) -> bool:
    """An export's own instance: not one of its lanes (`<id>-lane<n>`, shared/export/lanes.py), which run the
    same orchestrator."""
    return durable_status.get("name") == ORCHESTRATOR and is_operation_id(str(durable_status.get("instanceId")))


def lane_count(durable_status: Mapping[str, Any]) -> int:
    """How many lanes the export runs as (1: none), from the status its parent publishes or else its checkpoint."""
    for field in ("customStatus", "input"):
        found = durable_json(durable_status.get(field))
        if isinstance(found, dict) and "lanes" in found:
            return int(found["lanes"])
    return 1


def with_lanes(durable_status: Mapping[str, Any], lanes: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The durable status of an export run as lanes, its progress the sum of its lanes' (their durable statuses,
    in lane order; None: not started). A parent waiting for its lanes runs no code, so it cannot publish their
    progress; once it has completed or failed, its own status holds the final sum and is kept."""
    custom = durable_json(durable_status.get("customStatus"))
    if durable_status.get("runtimeStatus") in ("Completed", "Failed") or not isinstance(custom, dict):
        return dict(durable_status)
    progress = [durable_json(lane.get("customStatus")) if lane else None for lane in lanes]
    return {**durable_status, "customStatus": summed(custom, [p if isinstance(p, dict) else None for p in progress])}


def operation_view(durable_status: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The operation as a client sees it on route `version` ("v1" or "v2"; unversioned is v1)."""
    progress = _progress(durable_status)
    status = status_name(durable_status.get("runtimeStatus"), version)
    created = progress.get("createdTime") or durable_status.get("createdTime")
    view: dict[str, Any] = {
        "operationId": durable_status.get("instanceId"),
        "type": "export",
        "createdTime": created,
        "lastUpdatedTime": _not_before(durable_status.get("lastUpdatedTime"), created),
        "status": status,
        "results": {
            "errorHref": progress.get("errorHref"),
            "exported": int(progress.get("exported") or 0),
            "skipped": int(progress.get("skipped") or 0),
        },
    }
    if progress.get("total") is not None:  # what exported + skipped will be, once nothing is left to list
        view["results"]["total"] = int(progress["total"])
    for key in ("manifestHref", "manifestSha256", "manifestSize"):
        if progress.get(key) is not None:
            view["results"][key] = progress[key]
    if progress.get("partition"):  # the data partition of the DICOMweb store it reads
        view["partition"] = progress["partition"]
    if progress.get("queries"):  # a query source: each query, the instances it selected, the rows dropped
        view["results"]["queries"] = progress["queries"]
    if status == "failed":
        view["errors"] = [failure_reason(progress.get("error") or durable_status.get("output"))]
    return view


def _not_before(updated: str | None, created: str | None) -> str | None:
    """The durable API's whole-second update time, never earlier than the microsecond created time."""
    try:
        if updated and created and datetime.fromisoformat(updated) < datetime.fromisoformat(created):
            return created
    except ValueError:
        pass
    return updated


def is_terminal(view: Mapping[str, Any]) -> bool:
    return view["status"] in TERMINAL


def failure_reason(output: Any) -> str:
    """A failure as one clean sentence: durable's prefixes and stack traces removed, secrets scrubbed."""
    text = output if isinstance(output, str) else json.dumps(output) if output is not None else ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = _FAILURE_PREFIX.sub("", lines[0]) if lines else ""
    return scrub(first)[:1000] or "the export failed"


def _progress(durable_status: Mapping[str, Any]) -> dict[str, Any]:
    custom = durable_json(durable_status.get("customStatus"))
    if isinstance(custom, dict) and "errorHref" in custom:
        ended = durable_json(durable_status.get("output"))  # a cancel's reason carries the manifest it committed
        if durable_status.get("runtimeStatus") == "Terminated" and isinstance(ended, dict) and "manifestHref" in ended:
            return {**custom, **{k: v for k, v in ended.items() if k.startswith("manifest")}}
        return custom
    checkpoint = durable_json(durable_status.get("input"))
    if isinstance(checkpoint, dict):
        keys = ("createdTime", "errorHref", "exported", "skipped", "partition")
        return {**{k: checkpoint.get(k) for k in keys}, "total": _total(checkpoint)}
    return {}


def _total(checkpoint: dict[str, Any]) -> int | None:
    """The total a checkpoint input already knows (an export of instances: from the start); None if unknown."""
    try:
        return Checkpoint.from_json(checkpoint).total
    except (KeyError, TypeError, ValueError):  # not a checkpoint this version can read: no total yet
        return None


def durable_json(value: Any) -> Any:
    """A durable status field as JSON: the HTTP API returns inputs and custom status either parsed or as text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def retrying(history: list[Mapping[str, Any]] | None, max_attempts: int | None = None) -> dict[str, Any] | None:
    """What is being retried in this generation, from its durable history; None when nothing is.

    The orchestrator retries a failed activity itself (orchestrations/export.py): the history holds each
    failed attempt (TaskFailed, with its reason), then a timer (TimerCreated, FireAt) until the next one;
    a timer due when it was created is the zero-length one a new call is yielded beside, not a wait.
    A step is being retried while a failure of it is not followed by its success; attempts of one step
    share its name and input. The reason is scrubbed like every failure.
    """
    failures: dict[tuple[Any, str], list[Mapping[str, Any]]] = {}
    timers: list[str] = []
    for event in history or []:
        kind = event.get("EventType")
        step = (event.get("FunctionName"), json.dumps(event.get("Input"), sort_keys=True, default=str))
        if kind == "TaskFailed":
            failures.setdefault(step, []).append(event)
        elif kind == "TaskCompleted":
            failures.pop(step, None)
        elif kind == "TimerCreated" and event.get("FireAt") and _later(event["FireAt"], event.get("Timestamp")):
            timers.append(str(event["FireAt"]))  # a wait; not the zero-length timer a new call is yielded beside
        elif kind == "TimerFired" and str(event.get("FireAt")) in timers:
            timers.remove(str(event["FireAt"]))
    chains = [c for c in failures.values() if not max_attempts or len(c) < max_attempts]  # else: no more tries
    if not chains:
        return None
    chain = max(chains, key=lambda events: str(events[-1].get("Timestamp") or ""))
    last = chain[-1]
    due = sorted(t for t in timers if t >= str(last.get("Timestamp") or ""))
    found: dict[str, Any] = {"reason": failure_reason(last.get("Reason") or last.get("Details")),
                             "attempt": len(chain) + 1, "since": last.get("Timestamp")}
    if max_attempts:
        found["maxAttempts"] = max_attempts
    if due:
        found["nextAttemptTime"] = due[0]
    return found


def _later(fire_at: Any, timestamp: Any) -> bool:
    """Whether a timer's FireAt is after the time it was created (either an ISO time, .NET's 7 digits or fewer)."""
    def moment(text: Any) -> datetime | None:
        match = re.fullmatch(r"([^.Z+]+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", str(text or ""))
        if not match:
            return None
        whole, fraction, zone = match.groups()
        try:
            return datetime.fromisoformat(f"{whole}.{(fraction or '0')[:6]:0<6}{'+00:00' if zone in (None, 'Z') else zone}")
        except ValueError:
            return None
    fire, created = moment(fire_at), moment(timestamp)
    return fire is None or created is None or fire > created
