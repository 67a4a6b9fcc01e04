"""Work out what an orchestrator episode schedules, as the Durable extension's out-of-process shim does.

Every episode the SDK returns all the actions the orchestrator has scheduled in this generation (schema V2/V3:
one action per `yield`, `task_all`/`task_any` nesting their children). The host must find the new ones and give
each its sequence number (the `EventId` its completion will quote). As the extension's OutOfProcOrchestrationShim
does, the actions are awaited one after another: the next is scheduled only when the one before has finished by
.NET's rules (a `task_all` when every child has finished, failed ones included; a `task_any` when one has), and
the timer and re-attempt of a `*_with_retry` call are inserted when its failure and its timer are replayed
(DurableTask.Core's RetryInterceptor, which since 2.7 ends a failed last attempt with a zero-length timer).

The orchestration may end only once the walk has awaited every action and no activity, sub-orchestration or
timer it scheduled is still open (DurableTask.Core's TaskOrchestrationExecutor completes only without open
tasks): until then its output or failure waits, and the instance stays Running.
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


# The Azure Storage provider's longest delay (AzureStorageDurabilityProvider.ValidateDelayTime).
MAX_DELAY = timedelta(days=6)


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
    settled: bool = False  # every action awaited and no scheduled task open: the orchestration may end


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
        self.buffered: dict[str, int] = {}  # events raised while no wait was open, per name (case-insensitive)
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
                name = str(e["Name"]).lower()
                waiters = self.waiting.get(name)
                if waiters:
                    self._complete(waiters.pop(), True)  # the latest wait gets the event
                else:
                    self.buffered[name] = self.buffered.get(name, 0) + 1
        # Actions after the one being awaited are not scheduled yet: the shim reaches them only when it finishes.
        self.plan.settled = self.current is None and not self.open
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
        elif parent.kind == "any":
            if not parent.done:
                self._complete(parent, True)
        else:  # Task.WhenAll: finished when every child has finished, failed if any failed
            parent.ok = parent.ok and ok
            parent.pending -= 1
            if parent.pending == 0:
                self._complete(parent, parent.ok)

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
        elif retry.attempts >= retry.action["retryOptions"]["maxNumberOfAttempts"]:
            assert self.now is not None
            retry.timer = self._leaf("timer", {"fireAt": iso(self.now)}, retry)  # no wait after the last attempt
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
            _check_retry_options(action["retryOptions"])
            node = _Node("retry", action, parent)
            node.started = self.now
            self._leaf(_LEAF_KINDS[kind], action, node)
            return node
        if kind == WAIT_FOR_EVENT:
            node = _Node("event", action, parent)
            name = str(action["externalEventName"]).lower()
            if self.buffered.get(name):  # raised before the wait: one buffered event satisfies one wait
                self.buffered[name] -= 1
                node.done = node.ok = True
            else:
                self.waiting.setdefault(name, []).append(node)
            return node
        if kind in (WHEN_ALL, WHEN_ANY):
            node = _Node("all" if kind == WHEN_ALL else "any", action, parent)
            children = [c for c in (self._create(a, node) for a in action.get("compoundActions") or []) if c]
            finished = [c for c in children if c.done]
            node.ok = all(c.ok for c in finished)
            if not children or (node.kind == "any" and finished) or len(finished) == len(children):
                node.done, node.ok = True, node.ok or node.kind == "any"
            else:
                node.pending = len(children) - len(finished)
            return node
        raise ReplayError(f"unknown action type {kind!r} in the orchestrator's actions")

    def _leaf(self, kind: str, action: dict[str, Any], parent: _Node | None) -> _Node:
        node = _Node(kind, action, parent)
        node.id = task_id = self.counter
        self.counter += 1
        name = action.get("functionName")
        past = self.scheduled.get(task_id)
        if past is not None:
            if _SCHEDULING[EventType(past["EventType"])] != kind or (name is not None and past.get("Name") != name):
                was = " ".join(filter(None, (EventType(past["EventType"]).name, past.get("Name"))))
                raise ReplayError(f"Non-deterministic workflow detected: task {task_id} is {was} in the history, "
                                  f"but the orchestrator now schedules {' '.join(filter(None, (kind, name)))}")
        elif kind == "timer":
            self.plan.decisions.append(Decision("timer", task_id, fire_at=action["fireAt"]))
        elif kind == "activity":
            self.plan.decisions.append(Decision("activity", task_id, name=name, input=action.get("input")))
        else:
            instance = action.get("instanceId") or f"{self.execution_id}:{task_id}"
            self.plan.decisions.append(Decision("suborchestration", task_id, name=name, input=action.get("input"),
                                                instance_id=instance))
        if kind == "timer" and action.get("isCanceled"):
            node.done = node.ok = True  # the shim creates it, then cancels it: written, neither awaited nor open
        else:
            self.open[task_id] = node
        return node


def _check_retry_options(options: dict[str, Any]) -> None:
    """The extension's check of retry intervals against the storage provider's longest delay."""
    for key, name in (("maxRetryIntervalInMilliseconds", "MaxRetryInterval"),
                      ("firstRetryIntervalInMilliseconds", "FirstRetryInterval")):
        value = options.get(key)
        if value is not None and timedelta(milliseconds=value) > MAX_DELAY:
            raise ReplayError(f"The Azure Storage provider supports a maximum of 6 days for time-based delays "
                              f"(Parameter '{name}')")


def plan_episode(history: list[dict[str, Any]], actions: list[list[dict[str, Any]]], schema_version: int,
                 execution_id: str) -> Plan:
    """The scheduling decisions implied by `actions` (the SDK's state) given the whole generation's history."""
    if schema_version < 1:
        raise ReplayError("the orchestrator replied with replay schema V1; devhost needs azure-functions-durable>=1.2")
    if len(actions) != 1:
        raise ReplayError(f"expected one action list with schema V{schema_version + 1}, got {len(actions)}")
    return _Replay(history, actions[0], execution_id).run()
