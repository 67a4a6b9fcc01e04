"""Orchestration history events, shaped as the Durable Task Framework serializes them for out-of-process workers.

The Python SDK rebuilds its state from these dicts (`HistoryEvent(**event)`), so field names and `EventType`
numbers are the host's own (DurableTask.Core.History). Times are UTC ISO-8601 strings ending in `Z`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any


class EventType(IntEnum):
    ExecutionStarted = 0
    ExecutionCompleted = 1
    ExecutionFailed = 2
    ExecutionTerminated = 3
    TaskScheduled = 4
    TaskCompleted = 5
    TaskFailed = 6
    SubOrchestrationInstanceCreated = 7
    SubOrchestrationInstanceCompleted = 8
    SubOrchestrationInstanceFailed = 9
    TimerCreated = 10
    TimerFired = 11
    OrchestratorStarted = 12
    OrchestratorCompleted = 13
    EventSent = 14
    EventRaised = 15
    ContinueAsNew = 16
    GenericEvent = 17
    HistoryState = 18
    ExecutionSuspended = 19
    ExecutionResumed = 20


class OrchestrationStatus(IntEnum):
    """DurableTask.Core.OrchestrationStatus: the number ExecutionCompleted events carry."""

    Running = 0
    Completed = 1
    ContinuedAsNew = 2
    Failed = 3
    Canceled = 4
    Terminated = 5
    Pending = 6
    Suspended = 7


TERMINAL = frozenset({"Completed", "Failed", "Terminated", "Canceled"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Microsecond ISO-8601 in UTC with a `Z`: sortable as text, parsed by the SDK's dateutil."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def event(kind: EventType, timestamp: str, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    return {"EventType": int(kind), "EventId": event_id, "IsPlayed": False, "Timestamp": timestamp, **fields}


def execution_started(timestamp: str, instance_id: str, execution_id: str, name: str, input_json: str | None,
                      parent: dict[str, Any] | None = None) -> dict[str, Any]:
    return event(EventType.ExecutionStarted, timestamp, OrchestrationInstance={"InstanceId": instance_id,
                 "ExecutionId": execution_id}, ParentInstance=parent, Name=name, Version="", Input=input_json,
                 Tags=None)


def execution_completed(timestamp: str, status: OrchestrationStatus, result: str | None,
                        details: str | None = None) -> dict[str, Any]:
    return event(EventType.ExecutionCompleted, timestamp, OrchestrationStatus=int(status), Result=result,
                 FailureDetails=details)


def task_completed(timestamp: str, task_id: int, result: str | None) -> dict[str, Any]:
    return event(EventType.TaskCompleted, timestamp, TaskScheduledId=task_id, Result=result)


def task_failed(timestamp: str, task_id: int, reason: str, details: str | None) -> dict[str, Any]:
    return event(EventType.TaskFailed, timestamp, TaskScheduledId=task_id, Reason=reason, Details=details)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_value(text: str | None) -> Any:
    """A stored JSON text as a value; text that is not JSON stays a string (as the host's ParseToJToken)."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return ""
    try:
        return json.loads(text)
    except ValueError:
        return text


def status_history(events: list[dict[str, Any]], show_output: bool, show_input: bool) -> list[dict[str, Any]]:
    """The `historyEvents` of a status response, transformed as the extension does for `showHistory=true`.

    Scheduling events are folded into their completions (FunctionName, ScheduledTime), episode markers dropped,
    EventType given by name.
    """
    scheduled: dict[tuple[str, int], tuple[int, dict[str, Any]]] = {}
    dropped: set[int] = set()
    out: list[dict[str, Any] | None] = []
    for index, raw in enumerate(events):
        item = dict(raw)
        kind = EventType(item["EventType"])
        item["EventType"] = kind.name
        if kind in (EventType.TaskScheduled, EventType.SubOrchestrationInstanceCreated):
            scheduled[(kind.name, item["EventId"])] = (index, raw)
            item.pop("Version", None)
        elif kind in (EventType.TaskCompleted, EventType.TaskFailed, EventType.SubOrchestrationInstanceCompleted,
                      EventType.SubOrchestrationInstanceFailed):
            source = "TaskScheduled" if kind in (EventType.TaskCompleted, EventType.TaskFailed) \
                else "SubOrchestrationInstanceCreated"
            found = scheduled.get((source, item.pop("TaskScheduledId", None)))
            if found:
                dropped.add(found[0])
                item["ScheduledTime"] = found[1]["Timestamp"]
                item["FunctionName"] = found[1]["Name"]
                if show_input:
                    item["Input"] = found[1].get("Input")
            if kind in (EventType.TaskCompleted, EventType.SubOrchestrationInstanceCompleted):
                if show_output:
                    item["Result"] = json_value(item.get("Result"))
                else:
                    item.pop("Result", None)
        elif kind == EventType.ExecutionStarted:
            item["FunctionName"] = item.pop("Name", None)
            for key in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                item.pop(key, None)
        elif kind == EventType.ExecutionCompleted:
            item["OrchestrationStatus"] = OrchestrationStatus(item["OrchestrationStatus"]).name
            if show_output:
                item["Result"] = json_value(item.get("Result"))
            else:
                item.pop("Result", None)
        elif kind == EventType.TimerFired:
            item.pop("TimerId", None)
        elif kind in (EventType.OrchestratorStarted, EventType.OrchestratorCompleted):
            dropped.add(index)
        if not show_input:
            item.pop("Input", None)
        item.pop("EventId", None)
        item.pop("IsPlayed", None)
        out.append(item)
    return [item for index, item in enumerate(out) if index not in dropped and item is not None]
