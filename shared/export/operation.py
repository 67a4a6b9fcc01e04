"""The DICOM operation resource, computed from the durable instance's status.

The durable status (runtimeStatus, customStatus, input, output, times) is the source of truth;
this module only reshapes it:

    {"operationId", "type": "export", "createdTime", "lastUpdatedTime", "status",
     "results": {"errorHref", "exported", "skipped", "manifestHref" (once committed)},
     "errors": [...] (failed only)}

`createdTime` comes from the checkpoint (the first generation's), because each continue-as-new
starts a new execution. Progress comes from the custom status each generation publishes, or from
the checkpoint input before the first one. Nothing secret is read: the checkpoint's destination
is never copied, and failure messages are scrubbed once more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.secrets import scrub

ORCHESTRATOR = "export_orchestrator"
_OPERATION_ID = re.compile(r"[0-9a-f]{32}")
_RUNTIME_TO_STATUS = {
    "Pending": "notStarted",
    "Running": "running",
    "ContinuedAsNew": "running",
    "Suspended": "running",
    "Completed": "completed",
    "Failed": "failed",
    "Terminated": "canceled",
    "Canceled": "canceled",
}
STATUSES = ("notStarted", "running", "completed", "succeeded", "failed", "canceled")
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
    return durable_status.get("name") == ORCHESTRATOR


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
    if progress.get("manifestHref"):
        view["results"]["manifestHref"] = progress["manifestHref"]
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
        return custom
    checkpoint = durable_json(durable_status.get("input"))
    if isinstance(checkpoint, dict):
        keys = ("createdTime", "errorHref", "exported", "skipped")
        return {k: checkpoint.get(k) for k in keys}
    return {}


def durable_json(value: Any) -> Any:
    """A durable status field as JSON: the HTTP API returns inputs and custom status either parsed or as text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
