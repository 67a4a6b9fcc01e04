"""The Durable Functions runtime of the local host: orchestrator episodes, the activity pool, timers, the task hub.

Orchestrators run through the real out-of-process protocol: each episode hands the registered orchestrator
(the SDK's `handle` wrapper) a context JSON with the instance's history, and the state JSON it returns (actions,
isDone, output, customStatus, error) drives what is scheduled (see replay.py). Every state change is one SQLite
transaction, so after a crash every unfinished instance resumes from its history; an activity whose completion
was not committed runs again (at least once, as in Durable Functions).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import history as h
from . import protos
from .app_loader import FunctionSpec, LoadedApp, format_timespan
from .durable_api import InstanceConflict, StartError
from .replay import Decision, Plan, ReplayError, plan_episode
from .taskhub import ActivityWork, InstanceRecord, Message, TaskHub

OUT_OF_PROC_DATA = "\n\n$OutOfProcData$:"
_CONTROL = (h.EventType.ExecutionSuspended, h.EventType.ExecutionResumed)
_RESULTS = (h.EventType.TaskCompleted, h.EventType.TaskFailed)
MAX_INSTANCE_ID_LENGTH = 256


@dataclass
class _Live:
    """A non-terminal instance as the engine holds it: its status row, cached history and unprocessed messages."""

    record: InstanceRecord
    events: list[dict[str, Any]] | None = None  # current generation's history; None until loaded
    events_json: list[str] = field(default_factory=list)  # the same events serialized with IsPlayed=true
    inbox: list[Message] = field(default_factory=list)
    running: bool = False
    outstanding: int = 0  # activity calls scheduled whose results the orchestrator has not seen yet
    episode_cost: float = 0.0  # seconds the last episode took
    episode_end: float = 0.0  # time.monotonic() when it ended


def _invocation_id() -> uuid.UUID:
    """A random id for a log line; uuid4 would read the OS entropy pool, a syscall per activity call."""
    return uuid.UUID(int=random.getrandbits(128), version=4)


def _played(event: dict[str, Any]) -> str:
    return h.dumps({**event, "IsPlayed": True})


def _exception_details(failure: protos.RpcException) -> str:
    """The failure details the extension records: the worker's message and stack trace."""
    return h.dumps({"Message": failure.message, "StackTrace": failure.stack_trace.rstrip()})


def _activity_input(input_json: str | None) -> protos.TypedData:
    """The activity's input as the extension hands it to Python: a string (DurableActivityContext.GetInput).

    An object or array is compact JSON; a scalar is its bare text (JValue.ToObject<string>: "hi" arrives as
    hi, true as True), which the SDK's json.loads then reads back, or keeps as a string; null is no data.
    """
    value = json.loads(input_json) if input_json else None
    if value is None:
        return protos.TypedData()
    if isinstance(value, (dict, list)):
        return protos.TypedData(string=h.dumps(value))
    return protos.TypedData(string=str(value))


def _failed(message: str) -> protos.InvocationResponse:
    return protos.InvocationResponse(result=protos.StatusResult(
        status=protos.StatusResult.Failure, exception=protos.RpcException(message=message)))


def _activity_output(value: protos.TypedData) -> str | None:
    """The activity's result as the extension stores it: the worker's JSON, compact; no value is null."""
    kind = value.WhichOneof("data")
    if kind is None:
        return None
    result = json.loads(value.json) if kind == "json" else getattr(value, kind)
    return None if result is None else h.dumps(result)


MAX_CUSTOM_STATUS_KB = 16


def _custom_status_problem(state: dict[str, Any]) -> str | None:
    """The extension's limit on custom status: 16 KB of UTF-16 (MessagePayloadDataConverter.Serialize)."""
    if "customStatus" not in state:
        return None
    size_kb = int(len(h.dumps(state["customStatus"]).encode("utf-16-le")) / 1024.0)
    if size_kb <= MAX_CUSTOM_STATUS_KB:
        return None
    return (f"The UTF-16 size of the JSON-serialized payload must not exceed {MAX_CUSTOM_STATUS_KB} KB. "
            f"The current payload size is {size_kb} KB.")


def _unknown_function(name: str, kind: str, known: dict[str, FunctionSpec]) -> str:
    """The extension's message for a call to a function that is not registered with that trigger."""
    message = f"The function '{name}' doesn't exist, is disabled, or is not an {kind} function. Additional info: "
    if known:
        return message + f"The following are the known {kind} functions: '" + "', '".join(known) + "'."
    return message + f"No {kind} functions are currently registered!"


def _no_client_binding() -> str:
    raise RuntimeError("no durable HTTP API is wired to this runtime for durableClient bindings")


class DurableRuntime:
    """The dispatcher: runs episodes and activity calls; the durable HTTP API (durable_api.py) drives it from outside."""

    def __init__(self, app: LoadedApp, data_dir: Path, logger: logging.Logger, verbose: bool = False):
        self.app = app
        self.data_dir = data_dir
        self.log = logger
        self.verbose = verbose
        self.hub_name = app.config.hub_name
        self.orchestrators = app.of_kind("orchestrator")
        self.activities = app.of_kind("activity")
        self.hub: TaskHub | None = None
        self.live: dict[str, _Live] = {}
        self._finished: list[tuple[ActivityWork, dict[str, Any] | None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.ready = False
        # What `durableClient` bindings of activities receive: the durable HTTP API's URLs (durable_api.py).
        # `python -m devhost` sets it to DurableApi.client_binding.
        self.client_binding: Callable[[], str] = _no_client_binding  # the task hub is open and all unfinished work is loaded

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the task hub, start the pools and resume all unfinished work."""
        config = self.app.config
        self.hub = TaskHub(self.data_dir / f"{self.hub_name}.sqlite")
        self._loop = asyncio.get_running_loop()
        self._orchestrator_slots = asyncio.Semaphore(config.max_orchestrators)
        self._activity_queue: asyncio.Queue[ActivityWork] = asyncio.Queue()

        for record in self.hub.active_instances(h.TERMINAL):
            self.live[record.instance_id] = _Live(record)
        orphans = []
        for message in self.hub.messages():
            if message.instance_id in self.live:
                self._deliver(message)
            else:
                orphans.append(message.id)
        work = self.hub.all_activities()
        with self.hub.transaction():
            self.hub.delete_messages(orphans)
        for item in work:
            self._activity_queue.put_nowait(item)
        for _ in range(config.max_activities):
            self._spawn(self._activity_worker())
        self.ready = True
        if self.live or work:
            self.log.info("Task hub %s: resuming %d unfinished orchestration(s), %d queued activity call(s)",
                          self.hub_name, len(self.live), len(work))

    async def stop(self) -> None:
        self._stopping, self.ready = True, False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.hub:
            self.hub.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ client operations (used by the HTTP API)
    def record(self, instance_id: str) -> InstanceRecord | None:
        live = self.live.get(instance_id)
        return live.record if live else self._hub.get_instance(instance_id)

    @property
    def _hub(self) -> TaskHub:
        assert self.hub is not None, "the durable runtime is not started"
        return self.hub

    def history_of(self, instance_id: str) -> list[dict[str, Any]]:
        live = self.live.get(instance_id)
        if live and live.events is not None:
            return live.events
        return [json.loads(e) for e in self._hub.load_history(instance_id)]

    def query_instances(self, statuses: list[str], created_from: str | None, created_to: str | None,
                        prefix: str | None, page_size: int, token: str | None) -> tuple[list[InstanceRecord], str | None]:
        """One page of instance status rows by filter, and the continuation token of the next page (None: last)."""
        return self._hub.query_instances(statuses, created_from, created_to, prefix, page_size, token)

    def start_new(self, name: str, instance_id: str | None, input_json: str | None) -> str:
        """Create an instance (Pending) and queue its start; an ended instance with the same ID is replaced."""
        if name not in self.orchestrators:
            raise StartError(_unknown_function(name, "orchestrator", self.orchestrators))
        instance_id = instance_id or uuid.uuid4().hex
        if instance_id.startswith("@"):
            raise StartError("Orchestration instance ids must not start with @.")
        if any(c in "/\\#?" or ord(c) < 32 or 127 <= ord(c) < 160 for c in instance_id):
            raise StartError("Orchestration instance ids must not contain /, \\, #, ?, or control characters.")
        if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
            raise StartError(f"Instance ID lengths must not exceed {MAX_INSTANCE_ID_LENGTH} characters.")
        existing = self.live.get(instance_id)
        if existing:
            raise InstanceConflict(f"An Orchestration instance with the status {existing.record.runtime_status} "
                                   "already exists.")
        now = h.iso(h.utc_now())
        record = InstanceRecord(instance_id, name, uuid.uuid4().hex, "Pending", input_json, None, None, now, now)
        start = h.execution_started(now, instance_id, record.execution_id, name, input_json)
        with self._hub.transaction():
            self._hub.delete_instance(instance_id)
            self._hub.put_instance(record)
            [message] = self._hub.add_messages([(instance_id, record.execution_id, None, start)])
        self.live[instance_id] = _Live(record, events=[])
        self._deliver(message)
        self.log.info("%s: Function '%s (Orchestrator)' scheduled. Reason: NewInstance.", instance_id, name)
        return instance_id

    def send(self, instance_id: str, event: dict[str, Any]) -> None:
        """Queue an instance-level event (raised event, terminate, suspend, resume) for the next episode."""
        with self._hub.transaction():
            [message] = self._hub.add_messages([(instance_id, None, None, event)])
        self._deliver(message)

    def purge(self, instance_ids: list[str]) -> int:
        """Delete ended instances and their history; running ones are kept. Returns how many were deleted."""
        ended = [i for i in instance_ids if i not in self.live and self._hub.get_instance(i)]
        with self._hub.transaction():
            for instance_id in ended:
                self._hub.delete_instance(instance_id)
        return len(ended)

    # ------------------------------------------------------------------ message delivery and dispatch
    def _deliver(self, message: Message) -> None:
        live = self.live.get(message.instance_id)
        if live is None:
            return
        if message.due:
            delay = (h.parse_time(message.due) - h.utc_now()).total_seconds()
            if delay > 0:
                self._loop.call_later(delay, self._deliver, replace(message, due=None))
                return
        live.inbox.append(message)
        self._wake(live)

    def _processable(self, live: _Live) -> bool:
        if not live.inbox:
            return False
        if live.record.runtime_status != "Suspended":
            return True
        return any(m.event["EventType"] in (h.EventType.ExecutionResumed, h.EventType.ExecutionTerminated)
                   for m in live.inbox)

    def _wake(self, live: _Live) -> None:
        if not live.running and not self._stopping and self._processable(live):
            live.running = True
            self._spawn(self._drive(live))

    async def _drive(self, live: _Live) -> None:
        """Run episodes for one instance, one at a time, while it has messages to process."""
        try:
            while self._processable(live) and not self._stopping and self.live.get(live.record.instance_id) is live:
                wait = self._batch_wait(live)
                if wait > 0:
                    await asyncio.sleep(wait)
                async with self._orchestrator_slots:
                    started = time.monotonic()
                    await self._episode(live)
                    live.episode_end = time.monotonic()
                    live.episode_cost = live.episode_end - started
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("%s: internal error while running an orchestrator episode; it is retried when the "
                               "instance gets its next message", live.record.instance_id)
            self._reload(live)
        finally:
            live.running = False

    def _reload(self, live: _Live) -> None:
        """Forget what memory holds of an instance; its task hub rows are the truth."""
        record = self._hub.get_instance(live.record.instance_id)
        if record is None or record.runtime_status in h.TERMINAL:
            self.live.pop(live.record.instance_id, None)
            return
        live.record, live.events, live.events_json = record, None, []
        live.inbox = [m for m in self._hub.messages(record.instance_id) if not m.due or
                      h.parse_time(m.due) <= h.utc_now()]

    @staticmethod
    def _batch_wait(live: _Live) -> float:
        """How long to let a fan-out's results pile up before the next episode.

        Each episode replays the whole history, so a fan-out of thousands would otherwise spend its time
        replaying for every few results. While only activity results are waiting and more are due, episodes
        are spaced by the last one's duration: replay then takes at most about half of the time.
        """
        results = sum(m.event["EventType"] in _RESULTS for m in live.inbox)
        if results < len(live.inbox) or results >= live.outstanding:
            return 0.0
        return live.episode_end + live.episode_cost - time.monotonic()

    # ------------------------------------------------------------------ episodes
    def _load_history(self, live: _Live) -> None:
        if live.events is None:
            live.events_json = self._hub.load_history(live.record.instance_id)
            live.events = [json.loads(e) for e in live.events_json]
            kinds = [e["EventType"] for e in live.events]
            live.outstanding = kinds.count(h.EventType.TaskScheduled) - sum(kinds.count(k) for k in _RESULTS)

    async def _episode(self, live: _Live) -> None:
        self._load_history(live)
        record = live.record
        messages, live.inbox = live.inbox, []
        stale = [m.id for m in messages if m.execution_id not in (None, record.execution_id)]
        messages = [m for m in messages if m.execution_id in (None, record.execution_id)]
        kinds = [m.event["EventType"] for m in messages]
        if h.EventType.ExecutionTerminated in kinds:
            reason = next(m for m in messages if m.event["EventType"] == h.EventType.ExecutionTerminated).event
            self._terminate(live, reason.get("Input"))
        elif any(k in _CONTROL for k in kinds):
            self._suspend_or_resume(live, messages, stale)
        else:
            await self._orchestrate(live, messages, stale)

    def _suspend_or_resume(self, live: _Live, messages: list[Message], stale: list[int]) -> None:
        """Apply suspend/resume messages; everything else waits for the next episode."""
        record = live.record
        events: list[dict[str, Any]] = []
        status = record.runtime_status
        for m in messages:
            kind = m.event["EventType"]
            if kind == h.EventType.ExecutionSuspended and status != "Suspended":
                status, events = "Suspended", events + [m.event]
            elif kind == h.EventType.ExecutionResumed and status == "Suspended":
                status, events = ("Running" if live.events else "Pending"), events + [m.event]
        controls = [m for m in messages if m.event["EventType"] in _CONTROL]
        updated = replace(record, runtime_status=status, last_updated_time=h.iso(h.utc_now()))
        stored = [_played(e) for e in events] if live.events else []
        with self._hub.transaction():
            if stored:
                self._hub.append_history(record.instance_id, len(live.events_json), stored)
            self._hub.delete_messages([m.id for m in controls] + stale)
            self._hub.put_instance(updated)
        if stored:
            assert live.events is not None
            live.events.extend({**e, "IsPlayed": True} for e in events)
            live.events_json.extend(stored)
        live.record = updated
        live.inbox = [m for m in messages if m.event["EventType"] not in _CONTROL] + live.inbox
        self.log.info("%s: orchestration is %s.", record.instance_id, status)

    def _terminate(self, live: _Live, reason: str | None) -> None:
        now = h.iso(h.utc_now())
        events = [h.event(h.EventType.OrchestratorStarted, now),
                  h.event(h.EventType.ExecutionTerminated, now, Input=reason),
                  h.execution_completed(now, h.OrchestrationStatus.Terminated, reason),
                  h.event(h.EventType.OrchestratorCompleted, now)]
        updated = replace(live.record, runtime_status="Terminated", output=reason, last_updated_time=now)
        self._finish(live, updated, events, failure=(reason or "", None))
        self.log.info("%s: Function '%s (Orchestrator)' was terminated.", updated.instance_id, updated.name)

    def _context_json(self, live: _Live, new_events: list[dict[str, Any]]) -> str:
        record = live.record
        parent = record.parent["instanceId"] if record.parent else None
        history = ",".join([*live.events_json, *(h.dumps(e) for e in new_events)])
        return (f'{{"history":[{history}],"input":{record.input or "null"},"instanceId":{h.dumps(record.instance_id)},'
                f'"isReplaying":{"true" if live.events else "false"},"parentInstanceId":{h.dumps(parent)},'
                '"upperSchemaVersion":1,"upperSchemaVersionNew":2,'
                # The Azure Storage provider's timer limits, as .NET TimeSpans: the SDK splits longer timers.
                '"longRunningTimerIntervalDuration":"3.00:00:00","maximumShortTimerDuration":"6.00:00:00",'
                '"defaultHttpAsyncRequestSleepTimeMillseconds":30000}')

    async def _invoke_orchestrator(self, spec: FunctionSpec, context: str) -> tuple[dict[str, Any] | None,
                                                                                     str | None, str | None]:
        """Run one episode of the orchestrator in the worker; returns (state, error, details) as the shim reads them."""
        answer = await self.app.worker.invoke(spec.function_id, {spec.trigger_param: protos.TypedData(string=context)})
        if answer.result.status == protos.StatusResult.Success:
            return json.loads(answer.return_value.json), None, None
        failure = answer.result.exception
        message, details = failure.message, _exception_details(failure)
        if OUT_OF_PROC_DATA in message:
            text, state_json = message.split(OUT_OF_PROC_DATA, 1)
            state = json.loads(state_json)
            return state, state.get("error") or text, details
        return None, message, details

    async def _orchestrate(self, live: _Live, messages: list[Message], stale: list[int]) -> None:
        record = live.record
        assert live.events is not None
        started = time.perf_counter()
        now = h.utc_now()
        messages.sort(key=lambda m: m.event["EventType"] != h.EventType.ExecutionStarted)
        new_events = [h.event(h.EventType.OrchestratorStarted, h.iso(now)), *(m.event for m in messages)]
        consumed = [m.id for m in messages] + stale
        live.outstanding -= sum(m.event["EventType"] in _RESULTS for m in messages)
        spec = self.orchestrators.get(record.name)
        state: dict[str, Any] | None = None
        plan: Plan | None = None
        error: str | None
        if spec is None:
            error, details = _unknown_function(record.name, "orchestrator", self.orchestrators), None
        else:
            state, error, details = await self._invoke_orchestrator(spec, self._context_json(live, new_events))
        fatal = error if state is None else None  # failures that end the orchestration at once
        if state is not None:
            try:
                plan = plan_episode(live.events + new_events, state.get("actions") or [[]],
                                    state.get("schemaVersion", 0), record.execution_id)
                fatal = self._check_functions(plan) or _custom_status_problem(state)
            except ReplayError as exc:
                fatal = str(exc)
        elapsed = (time.perf_counter() - started) * 1000
        invocation = _invocation_id()
        # The status is what this episode set: the SDK leaves it out to clear it.
        custom = h.dumps(state["customStatus"]) if state and "customStatus" in state else None
        stamp = h.iso(h.utc_now())
        if fatal is not None or (error is not None and plan is not None and plan.settled):
            reason = f"Orchestrator function '{record.name}' failed: {fatal or error}"
            updated = replace(record, runtime_status="Failed", output=reason, custom_status=custom,
                              last_updated_time=stamp)
            events = [*new_events, h.execution_completed(stamp, h.OrchestrationStatus.Failed, reason, details),
                      h.event(h.EventType.OrchestratorCompleted, stamp)]
            self._finish(live, updated, events, failure=(reason, details))
            self.log.error("Executed 'Functions.%s' (Failed, InstanceId=%s, Id=%s, Duration=%dms)\n%s",
                           record.name, record.instance_id, invocation, elapsed, reason)
            return
        assert state is not None and plan is not None
        for warning in plan.warnings:
            self.log.warning("%s: %s", record.instance_id, warning)
        self.log.info("Executed 'Functions.%s' (Succeeded, InstanceId=%s, Id=%s, Duration=%dms)",
                      record.name, record.instance_id, invocation, elapsed)
        if self.verbose:
            self.log.info("%s: replayed %d history events, %d new; scheduled %s%s", record.instance_id,
                          len(live.events), len(new_events), self._describe(plan),
                          "; done" if state.get("isDone") else "")
        ending = state.get("isDone") and plan.settled
        if ending and plan.continue_as_new is not None:
            self._continue_as_new(live, plan.continue_as_new.get("input"), custom, consumed)
        elif ending:
            output = h.dumps(state.get("output"))
            updated = replace(record, runtime_status="Completed", output=output, custom_status=custom,
                              last_updated_time=stamp)
            events = [*new_events, h.execution_completed(stamp, h.OrchestrationStatus.Completed, output),
                      h.event(h.EventType.OrchestratorCompleted, stamp)]
            self._finish(live, updated, events, failure=None)
        else:  # running, or done but with tasks still open: the end waits for them (as DurableTask.Core's)
            updated = replace(record, runtime_status="Running", custom_status=custom, last_updated_time=stamp)
            self._progress(live, updated, new_events, plan, consumed, stamp)

    @staticmethod
    def _describe(plan: Plan) -> str:
        counts: dict[str, int] = {}
        for d in plan.decisions:
            counts[d.kind] = counts.get(d.kind, 0) + 1
        return ", ".join(f"{n} {kind}(s)" for kind, n in counts.items()) or "nothing new"

    def _check_functions(self, plan: Plan) -> str | None:
        for decision in plan.decisions:
            if decision.kind == "activity" and decision.name not in self.activities:
                return _unknown_function(decision.name or "", "activity", self.activities)
            if decision.kind == "suborchestration" and decision.name not in self.orchestrators:
                return _unknown_function(decision.name or "", "orchestrator", self.orchestrators)
        return None

    def _progress(self, live: _Live, updated: InstanceRecord, new_events: list[dict[str, Any]], plan: Plan,
                  consumed: list[int], stamp: str) -> None:
        """Commit an episode that scheduled work: history, new activity calls, timers, sub-orchestrations."""
        record = live.record
        events = list(new_events)
        activities: list[tuple[str, str, int, str, str | None]] = []
        messages: list[tuple[str, str | None, str | None, dict[str, Any]]] = []
        children: list[InstanceRecord] = []
        for d in plan.decisions:
            if d.kind == "activity":
                events.append(h.event(h.EventType.TaskScheduled, stamp, d.event_id, Name=d.name, Version="",
                                      Input=d.input))
                activities.append((record.instance_id, record.execution_id, d.event_id, d.name or "", d.input))
            elif d.kind == "timer":
                fire_at = h.iso(h.parse_time(d.fire_at or stamp))
                events.append(h.event(h.EventType.TimerCreated, stamp, d.event_id, FireAt=fire_at))
                messages.append((record.instance_id, record.execution_id, fire_at,
                                 h.event(h.EventType.TimerFired, fire_at, TimerId=d.event_id, FireAt=fire_at)))
            else:
                events.append(h.event(h.EventType.SubOrchestrationInstanceCreated, stamp, d.event_id, Name=d.name,
                                      Version="", InstanceId=d.instance_id, Input=d.input))
                child, start = self._child(record, d, stamp, children)
                children += [child] if child else []
                messages.append(start)
        events.append(h.event(h.EventType.OrchestratorCompleted, stamp))
        stored = [_played(e) for e in events]
        with self._hub.transaction():
            self._hub.append_history(record.instance_id, len(live.events_json), stored)
            self._hub.delete_messages(consumed)
            work = self._hub.add_activities(activities)
            for child in children:
                self._hub.delete_instance(child.instance_id)
                self._hub.put_instance(child)
            queued = self._hub.add_messages(messages)
            self._hub.put_instance(updated)
        assert live.events is not None
        live.events.extend({**e, "IsPlayed": True} for e in events)
        live.events_json.extend(stored)
        live.record = updated
        live.outstanding += len(work)
        for child in children:
            self.live[child.instance_id] = _Live(child, events=[])
        for item in work:
            self._activity_queue.put_nowait(item)
        for message in queued:
            self._deliver(message)

    def _child(self, parent: InstanceRecord, decision: Decision, stamp: str, siblings: list[InstanceRecord]
               ) -> tuple[InstanceRecord | None, tuple[str, str | None, str | None, dict[str, Any]]]:
        """A sub-orchestration and its start message; or, when its ID is taken, the failure the parent gets."""
        child_id = decision.instance_id or ""
        other = self.live.get(child_id)
        if other is not None or child_id in (parent.instance_id, *(c.instance_id for c in siblings)):
            status = other.record.runtime_status if other else "Running"
            return None, (parent.instance_id, parent.execution_id, None, h.event(
                h.EventType.SubOrchestrationInstanceFailed, stamp, TaskScheduledId=decision.event_id,
                Reason=f"An orchestration instance with the ID '{child_id}' already exists and is {status}.",
                Details=None))
        child_input = h.dumps(decision.input) if decision.input is not None else None
        child = InstanceRecord(child_id, decision.name or "", uuid.uuid4().hex, "Pending", child_input, None, None,
                               stamp, stamp, parent={"instanceId": parent.instance_id, "name": parent.name,
                                                     "executionId": parent.execution_id, "taskId": decision.event_id})
        return child, (child_id, child.execution_id, None, h.execution_started(
            stamp, child_id, child.execution_id, child.name, child_input,
            parent={"Name": parent.name, "TaskScheduleId": decision.event_id, "OrchestrationInstance": {
                "InstanceId": parent.instance_id, "ExecutionId": parent.execution_id}}))

    def _continue_as_new(self, live: _Live, new_input: Any, custom: str | None, consumed: list[int]) -> None:
        """Start the next generation: history reset, new input, new execution ID.

        createdTime becomes the new generation's start, as the DTFx storage providers set it from each
        ExecutionStarted event.
        """
        record = live.record
        now = h.iso(h.utc_now())
        input_json = h.dumps(new_input) if new_input is not None else None
        updated = replace(record, execution_id=uuid.uuid4().hex, runtime_status="ContinuedAsNew", input=input_json,
                          output=None, custom_status=custom, created_time=now, last_updated_time=now)
        start = h.execution_started(now, record.instance_id, updated.execution_id, record.name, input_json,
                                    parent=None)
        with self._hub.transaction():
            self._hub.reset_history(record.instance_id)
            self._hub.delete_messages(consumed)
            self._hub.delete_activities_of(record.instance_id)
            [message] = self._hub.add_messages([(record.instance_id, updated.execution_id, None, start)])
            self._hub.put_instance(updated)
        live.events, live.events_json, live.record, live.outstanding = [], [], updated, 0
        self._deliver(message)
        self.log.info("%s: Function '%s (Orchestrator)' continued as new.", record.instance_id, record.name)

    def _finish(self, live: _Live, updated: InstanceRecord, events: list[dict[str, Any]],
                failure: tuple[str, str | None] | None) -> None:
        """Commit a terminal episode: history, final status, queued work dropped, the parent told."""
        record = live.record
        stored = [_played(e) for e in events]
        notify: list[tuple[str, str | None, str | None, dict[str, Any]]] = []
        parent = record.parent
        if parent:
            if failure is None:
                event = h.event(h.EventType.SubOrchestrationInstanceCompleted, updated.last_updated_time,
                                TaskScheduledId=parent["taskId"], Result=updated.output)
            else:
                event = h.event(h.EventType.SubOrchestrationInstanceFailed, updated.last_updated_time,
                                TaskScheduledId=parent["taskId"], Reason=failure[0], Details=failure[1])
            notify.append((parent["instanceId"], parent["executionId"], None, event))
        with self._hub.transaction():
            self._hub.append_history(record.instance_id, len(live.events_json), stored)
            self._hub.delete_messages_of(record.instance_id)
            self._hub.delete_activities_of(record.instance_id)
            self._hub.put_instance(updated)
            queued = self._hub.add_messages(notify)
        live.record = updated
        del self.live[record.instance_id]
        for message in queued:
            self._deliver(message)

    # ------------------------------------------------------------------ activities
    async def _activity_worker(self) -> None:
        while True:
            work = await self._activity_queue.get()
            live = self.live.get(work.instance_id)
            if live is None or live.record.execution_id != work.execution_id:
                self._finish_activity(work, None)
                continue
            self._finish_activity(work, await self._run_activity(work, live.record.instance_id))

    async def _run_activity(self, work: ActivityWork, instance_id: str) -> dict[str, Any]:
        spec = self.activities.get(work.name)
        invocation = _invocation_id()
        started = time.perf_counter()
        try:
            if spec is None:
                raise LookupError(_unknown_function(work.name, "activity", self.activities))
            inputs = {spec.trigger_param: _activity_input(work.input)}
            for name in spec.client_params:
                inputs[name] = protos.TypedData(string=self.client_binding())
            async with asyncio.timeout(self.app.config.function_timeout):
                answer = await self.app.worker.invoke(spec.function_id, inputs, invocation_id=str(invocation))
        except LookupError as exc:
            answer = _failed(str(exc))
        except TimeoutError:
            # The host gives up on the invocation (and, after a grace period, restarts the worker process).
            limit = format_timespan(self.app.config.function_timeout or 0)
            self.log.error("Timeout value of %s exceeded by function 'Functions.%s' (Id: '%s'). Initiating "
                           "cancellation.", limit, work.name, invocation)
            answer = _failed(f"Timeout value of {limit} was exceeded by function: Functions.{work.name}")
        elapsed = (time.perf_counter() - started) * 1000
        if answer.result.status != protos.StatusResult.Success:
            failure = answer.result.exception
            self.log.error("Executed 'Functions.%s' (Failed, InstanceId=%s, Id=%s, Duration=%dms)\n%s\n%s",
                           work.name, instance_id, invocation, elapsed, failure.message, failure.stack_trace)
            reason = f"Activity function '{work.name}' failed: {failure.message}"
            return h.task_failed(h.iso(h.utc_now()), work.task_id, reason, _exception_details(failure))
        self.log.info("Executed 'Functions.%s' (Succeeded, InstanceId=%s, Id=%s, Duration=%dms)",
                      work.name, instance_id, invocation, elapsed)
        output = _activity_output(answer.return_value)
        return h.task_completed(h.iso(h.utc_now()), work.task_id, output)

    def _finish_activity(self, work: ActivityWork, event: dict[str, Any] | None) -> None:
        """Record an activity's result; results finishing close together are committed in one transaction."""
        if not self._finished:
            self._loop.call_soon(self._commit_finished)
        self._finished.append((work, event))

    def _commit_finished(self) -> None:
        batch, self._finished = self._finished, []
        if self._stopping:
            return  # uncommitted: these calls run again on the next start
        results: list[tuple[str, str | None, str | None, dict[str, Any]]] = [
            (w.instance_id, w.execution_id, None, e) for w, e in batch
                   if e is not None and w.instance_id in self.live
                   and self.live[w.instance_id].record.execution_id == w.execution_id]
        with self._hub.transaction():
            self._hub.delete_activities([w.id for w, _ in batch])
            queued = self._hub.add_messages(results)
        for message in queued:
            self._deliver(message)

    # ------------------------------------------------------------------ waiting (used by the HTTP API)
    async def wait_until_ended(self, instance_id: str, timeout: float, interval: float) -> InstanceRecord | None:
        deadline = time.monotonic() + timeout
        while True:
            record = self.record(instance_id)
            if record is None or record.runtime_status in h.TERMINAL or time.monotonic() >= deadline:
                return record
            await asyncio.sleep(max(0.0, min(interval, deadline - time.monotonic())))
