"""Run the real export orchestrator without a host: the SDK's own entry point fed a built history.

As the Durable Functions Python SDK tests its orchestrators, each episode hands the registered
orchestrator (the SDK's `Orchestrator.create` handle around `orchestrations.export`'s generator) the
history the Durable extension would: ExecutionStarted with the checkpoint, TaskScheduled for every
activity call it made and TimerCreated for every timer, TaskCompleted or TaskFailed for the calls that
finished, TimerFired for the timers that fired. A zero-length timer fires at once, in an episode of its
own, as the extension fires it; a later one (a retry's wait) fires when the test says. Its answer is the
state the extension reads: the actions so far, the custom status, done or not, continue-as-new.
Event ids are given in the order calls and timers were scheduled, as DurableTask.Core numbers them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devhost import history as h
from orchestrations.export import export_orchestrator
from shared.export.checkpoint import Checkpoint
from shared.export.operation import ORCHESTRATOR

HANDLE = export_orchestrator._function.get_user_function()  # what the worker calls with the context JSON
CONTINUE_AS_NEW = 4
CREATE_TIMER = 5
ACTIVITY_CALLS = (0, 1)  # call_activity, call_activity_with_retry
NOW = "2026-01-01T00:00:00.000000Z"


@dataclass(frozen=True)
class Call:
    event_id: int
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Timer:
    event_id: int
    fire_at: str


@dataclass
class Execution:
    """One execution of the orchestrator (one run) and the history the extension keeps of it."""

    checkpoint: Checkpoint
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)  # every activity call scheduled, in order
    timers: list[Timer] = field(default_factory=list)  # every timer created, in order
    finished: set[int] = field(default_factory=set)
    state: dict[str, Any] = field(default_factory=dict)
    sequence: int = 0  # the next event id: calls and timers are numbered together

    def __post_init__(self) -> None:
        self.events = [h.event(h.EventType.OrchestratorStarted, NOW),
                       h.execution_started(NOW, "op", "exec", ORCHESTRATOR, json.dumps(self.checkpoint.to_json()))]
        self.episode()

    def episode(self) -> dict[str, Any]:
        """Replay the history through the orchestrator; its new calls and timers join the history as TaskScheduled
        and TimerCreated; then the zero-length timers fire, each in an episode of its own."""
        context = {"history": self.events, "input": self.checkpoint.to_json(), "instanceId": "op",
                   "isReplaying": False, "parentInstanceId": None, "upperSchemaVersion": 1, "upperSchemaVersionNew": 2}
        self.state = json.loads(HANDLE(json.dumps(context)))
        for action in _leaves(self.state["actions"])[self.sequence:]:
            if action["actionType"] in ACTIVITY_CALLS:
                call = Call(self._next_id(), action["functionName"], json.loads(action["input"]))
                self.calls.append(call)
                self.events.append(h.event(h.EventType.TaskScheduled, NOW, call.event_id, Name=call.name, Version="",
                                           Input=action["input"]))
            elif action["actionType"] == CREATE_TIMER:
                timer = Timer(self._next_id(), action["fireAt"])
                self.timers.append(timer)
                self.events.append(h.event(h.EventType.TimerCreated, NOW, timer.event_id, FireAt=timer.fire_at))
        self.events.append(h.event(h.EventType.OrchestratorCompleted, NOW))
        for event in self.events:
            event["IsPlayed"] = True
        due = [t for t in self.waiting if h.parse_time(t.fire_at) <= h.parse_time(NOW)]
        if due and not self.state["isDone"]:
            return self.fire(due[0])
        return self.state

    def fire(self, timer: Timer) -> dict[str, Any]:
        self.finished.add(timer.event_id)
        self.events += [h.event(h.EventType.OrchestratorStarted, NOW),
                        h.event(h.EventType.TimerFired, NOW, TimerId=timer.event_id, FireAt=timer.fire_at)]
        return self.episode()

    @property
    def waiting(self) -> list[Timer]:
        """The timers created and not fired, cancelled ones left out."""
        cancelled = {i for i, a in enumerate(_leaves(self.state["actions"])) if a.get("isCanceled")}
        return [t for t in self.timers if t.event_id not in self.finished and t.event_id not in cancelled]

    @property
    def running(self) -> list[Call]:
        return [c for c in self.calls if c.event_id not in self.finished]

    def complete(self, call: Call, result: dict[str, Any]) -> dict[str, Any]:
        self.finished.add(call.event_id)
        self.events += [h.event(h.EventType.OrchestratorStarted, NOW),
                        h.task_completed(NOW, call.event_id, json.dumps(result))]
        return self.episode()

    def fail(self, call: Call, reason: str) -> dict[str, Any]:
        self.finished.add(call.event_id)
        self.events += [h.event(h.EventType.OrchestratorStarted, NOW), h.task_failed(NOW, call.event_id, reason, reason)]
        return self.episode()

    def _next_id(self) -> int:
        self.sequence += 1
        return self.sequence - 1

    @property
    def continued_as(self) -> Checkpoint | None:
        """The next run's checkpoint, once this one continued as new."""
        for action in _leaves(self.state["actions"]):
            if action["actionType"] == CONTINUE_AS_NEW:
                return Checkpoint.from_json(json.loads(action["input"]))
        return None


def run(checkpoint: Checkpoint, activities: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]
        ) -> tuple[Execution, int]:
    """Run the export to its end, every activity called as the extension would, in the order scheduled.

    Returns the last execution and how many executions (runs, one per continue-as-new) it took.
    """
    generations = 1
    execution = Execution(checkpoint)
    while True:
        while execution.running and not execution.state["isDone"]:
            call = execution.running[0]
            execution.complete(call, activities[call.name](json.loads(json.dumps(call.input))))
        following = execution.continued_as
        if following is None:
            return execution, generations
        execution, generations = Execution(following), generations + 1


def _leaves(actions: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The actions in the order scheduled, a task_all's or a retry's children in place of it."""
    leaves: list[dict[str, Any]] = []

    def walk(action: dict[str, Any]) -> None:
        children = action.get("compoundActions")
        if children is None:
            leaves.append(action)
        for child in children or ():
            walk(child)

    for episode in actions:
        for action in episode:
            walk(action)
    return leaves
