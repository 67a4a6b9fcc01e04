"""Work out what an orchestrator episode schedules, as the Durable extension's out-of-process shim does.

Every episode the SDK returns all the actions the orchestrator has scheduled in this generation (schema V2/V3:
one action per `yield`, `task_all`/`task_any` nesting their children). The host must find the new ones and give
each its sequence number (the `EventId` its completion will quote). Numbers are handed out in the order the SDK
hands them out: walking the history event by event, moving on to the next yielded action when the one the
orchestrator waits on completes, and inserting the timer and the re-attempt of a `*_with_retry` call when its
failure and its timer are replayed (the Durable Task Framework's RetryInterceptor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .history import EventType, iso, parse_time

CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CALL_SUB, CALL_SUB_WITH_RETRY = 0, 1, 2, 3
CONTINUE_AS_NEW, CREATE_TIMER, WAIT_FOR_EVENT = 4, 5, 6
WHEN_ANY, WHEN_ALL = 11, 12
_UNSUPPORTED = {7: "call_entity", 8: "call_http", 9: "signal_entity", 10: "signal_entity (scheduled)"}
_LEAF_KINDS = {CALL_ACTIVITY: "activity", CALL_SUB: "suborchestration", CREATE_TIMER: "timer",
               CALL_ACTIVITY_WITH_RETRY: "activity", CALL_SUB_WITH_RETRY: "suborchestration"}
_SCHEDULING = {EventType.TaskScheduled: "activity", EventType.TimerCreated: "timer",
               EventType.SubOrchestrationInstanceCreated: "suborchestration"}


class ReplayError(Exception):
    """The actions cannot be scheduled: non-determinism or an API this host does not offer."""


@dataclass
class Decision:
    """A scheduling event this episode adds to the history."""

    kind: str  # 'activity' | 'timer' | 'suborchestration'
    event_id: int
    name: str | None = None
    input: str | None = None
    fire_at: str | None = None
    instance_id: str | None = None


@dataclass
class Plan:
    decisions: list[Decision] = field(default_factory=list)
    continue_as_new: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


class _Node:
    __slots__ = ("action", "attempts", "done", "id", "kind", "ok", "parent", "pending", "started", "timer")

    def __init__(self, kind: str, action: dict[str, Any], parent: _Node | None):
        self.kind, self.action, self.parent = kind, action, parent
        self.done = self.ok = False
        self.pending = 0
        self.attempts = 1
        self.timer: _Node | None = None
        self.started: datetime | None = None
        self.id: int | str | None = None


def retry_delay(options: dict[str, Any], attempt: int, started: datetime, now: datetime) -> timedelta | None:
    """The wait before the next attempt after failed attempt number `attempt` (1-based); None: give up.

    As DTFx's RetryInterceptor: first interval times coefficient^(attempt-1), capped by the maximum interval;
    no retry once `retryTimeoutInMilliseconds` has passed since the first attempt.
    """
    timeout = options.get("retryTimeoutInMilliseconds")
    if timeout is not None and now >= started + timedelta(milliseconds=timeout):
        return None
    delay = options["firstRetryIntervalInMilliseconds"] * options.get("backoffCoefficient", 1.0) ** (attempt - 1)
    cap = options.get("maxRetryIntervalInMilliseconds")
    if cap is not None:
        delay = min(delay, cap)
    return timedelta(milliseconds=delay)


class _Replay:
    def __init__(self, history: list[dict[str, Any]], actions: list[dict[str, Any]], execution_id: str):
        self.history, self.actions, self.execution_id = history, actions, execution_id
        self.scheduled = {e["EventId"]: e for e in history if e["EventType"] in _SCHEDULING}
        self.counter = 0
        self.open: dict[int, _Node] = {}
        self.waiting: dict[str, list[_Node]] = {}
        self.deferred: set[str] = set()
        self.cursor = 0
        self.current: _Node | None = None
        self.now: datetime | None = None
        self.plan = Plan()

    def run(self) -> Plan:
        for e in self.history:
            kind = e["EventType"]
            if kind == EventType.OrchestratorStarted:
                moment = parse_time(e["Timestamp"])
                self.now = moment if self.now is None or moment > self.now else self.now
            elif kind == EventType.ExecutionStarted:
                self._advance()
            elif kind in (EventType.TaskCompleted, EventType.SubOrchestrationInstanceCompleted):
                self._resolve(e["TaskScheduledId"], True)
            elif kind in (EventType.TaskFailed, EventType.SubOrchestrationInstanceFailed):
                self._resolve(e["TaskScheduledId"], False)
            elif kind == EventType.TimerFired:
                self._resolve(e["TimerId"], True)
            elif kind == EventType.EventRaised:
                waiters = self.waiting.get(e["Name"])
                if waiters:
                    self._complete(waiters.pop(), True)  # the SDK hands the event to the latest waiter
                else:
                    self.deferred.add(e["Name"])
        # Whatever the walk did not reach was still yielded (e.g. a task_any over an already finished task):
        # schedule it now rather than lose it.
        while self.cursor < len(self.actions):
            self._create(self.actions[self.cursor], None)
            self.cursor += 1
        return self.plan

    def _advance(self) -> None:
        while self.cursor < len(self.actions):
            node = self._create(self.actions[self.cursor], None)
            self.cursor += 1
            if node is not None and not node.done:
                self.current = node
                return
        self.current = None

    def _resolve(self, task_id: int, ok: bool) -> None:
        node = self.open.pop(task_id, None)
        if node is not None:
            self._complete(node, ok)

    def _complete(self, node: _Node, ok: bool) -> None:
        node.done, node.ok = True, ok
        parent = node.parent
        if parent is None:
            if node is self.current:
                self._advance()
        elif parent.kind == "retry":
            self._retry_step(parent, node, ok)
        elif not parent.done:
            if parent.kind == "any" or not ok:
                self._complete(parent, parent.kind == "any")
            else:
                parent.pending -= 1
                if parent.pending == 0:
                    self._complete(parent, True)

    def _retry_step(self, retry: _Node, child: _Node, ok: bool) -> None:
        if child is retry.timer:
            retry.timer = None
            if retry.attempts >= retry.action["retryOptions"]["maxNumberOfAttempts"]:
                self._complete(retry, False)
            else:
                retry.attempts += 1
                self._leaf(_LEAF_KINDS[retry.action["actionType"]], retry.action, retry)
        elif ok:
            self._complete(retry, True)
        else:
            assert self.now is not None and retry.started is not None
            delay = retry_delay(retry.action["retryOptions"], retry.attempts, retry.started, self.now)
            if delay is None:
                self.plan.warnings.append(
                    f"retry timeout of {retry.action.get('functionName')!r} expired: the host gives up retrying, "
                    "which the Python SDK cannot observe (it waits for another retry timer)")
                self._complete(retry, False)
            else:
                retry.timer = self._leaf("timer", {"fireAt": iso(self.now + delay)}, retry)

    def _create(self, action: dict[str, Any], parent: _Node | None) -> _Node | None:
        kind = action.get("actionType")
        if kind in _UNSUPPORTED:
            raise ReplayError(f"{_UNSUPPORTED[kind]} is not supported by devhost")
        if kind == CONTINUE_AS_NEW:
            self.plan.continue_as_new = action
            return None
        if kind in (CALL_ACTIVITY, CALL_SUB, CREATE_TIMER):
            return self._leaf(_LEAF_KINDS[kind], action, parent)
        if kind in (CALL_ACTIVITY_WITH_RETRY, CALL_SUB_WITH_RETRY):
            node = _Node("retry", action, parent)
            node.started = self.now
            self._leaf(_LEAF_KINDS[kind], action, node)
            return node
        if kind == WAIT_FOR_EVENT:
            node = _Node("event", action, parent)
            name = action["externalEventName"]
            if name in self.deferred:  # raised before the wait; the SDK keeps it for every later wait too
                node.done = node.ok = True
            else:
                self.waiting.setdefault(name, []).append(node)
            return node
        if kind in (WHEN_ALL, WHEN_ANY):
            node = _Node("all" if kind == WHEN_ALL else "any", action, parent)
            children = [c for c in (self._create(a, node) for a in action.get("compoundActions") or []) if c]
            finished = [c for c in children if c.done]
            if not children or (node.kind == "any" and finished):
                node.done = node.ok = True
            elif node.kind == "all" and any(not c.ok for c in finished):
                node.done = True
            elif node.kind == "all" and len(finished) == len(children):
                node.done = node.ok = True
            else:
                node.pending = len(children) - len(finished)
            return node
        raise ReplayError(f"unknown action type {kind!r} in the orchestrator's actions")

    def _leaf(self, kind: str, action: dict[str, Any], parent: _Node | None) -> _Node:
        node = _Node(kind, action, parent)
        node.id = task_id = self.counter
        self.counter += 1
        self.open[task_id] = node
        name = action.get("functionName")
        past = self.scheduled.get(task_id)
        if past is not None:
            if _SCHEDULING[EventType(past["EventType"])] != kind or (name is not None and past.get("Name") != name):
                was = " ".join(filter(None, (EventType(past["EventType"]).name, past.get("Name"))))
                raise ReplayError(f"Non-deterministic workflow detected: task {task_id} is {was} in the history, "
                                  f"but the orchestrator now schedules {' '.join(filter(None, (kind, name)))}")
            return node
        if kind == "timer":
            self.plan.decisions.append(Decision("timer", task_id, fire_at=action["fireAt"]))
        elif kind == "activity":
            self.plan.decisions.append(Decision("activity", task_id, name=name, input=action.get("input")))
        else:
            instance = action.get("instanceId") or f"{self.execution_id}:{task_id}"
            self.plan.decisions.append(Decision("suborchestration", task_id, name=name, input=action.get("input"),
                                                instance_id=instance))
        return node


def plan_episode(history: list[dict[str, Any]], actions: list[list[dict[str, Any]]], schema_version: int,
                 execution_id: str) -> Plan:
    """The scheduling decisions implied by `actions` (the SDK's state) given the whole generation's history."""
    if schema_version < 1:
        raise ReplayError("the orchestrator replied with replay schema V1; devhost needs azure-functions-durable>=1.2")
    if len(actions) != 1:
        raise ReplayError(f"expected one action list with schema V{schema_version + 1}, got {len(actions)}")
    return _Replay(history, actions[0], execution_id).run()
