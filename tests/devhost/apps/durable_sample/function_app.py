"""Test-only Durable Functions app: one orchestrator per engine feature, started over HTTP as a user would."""

import asyncio
import json
import os
import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.Task import TaskState

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_attempts: dict[str, int] = {}


class TunedRetry(df.RetryOptions):
    """Retry options with the fields the host honours but the Python SDK does not expose."""

    def __init__(self, first_ms: int, attempts: int, backoff: float, max_interval_ms: int):
        super().__init__(first_ms, attempts)
        self.extra = {"backoffCoefficient": backoff, "maxRetryIntervalInMilliseconds": max_interval_ms}

    def to_json(self):
        return {**super().to_json(), **self.extra}


@app.route(route="orchestrators/{name}/{instanceId?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["name"], req.route_params.get("instanceId"),
                                         json.loads(body) if body else None)
    return client.create_check_status_response(req, instance_id)


@app.route(route="run/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["name"], None, json.loads(body) if body else None)
    return await client.wait_for_completion_or_create_check_status_response(req, instance_id, 30000, 100)


@app.route(route="binding", methods=["GET"])
@app.durable_client_input(client_name="client")
async def binding(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """What a durable client receives, so tests can drive the real client against this host."""
    b = client._orchestration_bindings
    return func.HttpResponse(json.dumps({"taskHubName": b.task_hub_name, "creationUrls": b.creation_urls,
                                         "managementUrls": b.management_urls, "rpcBaseUrl": b.rpc_base_url}),
                             mimetype="application/json")


@app.orchestration_trigger(context_name="context")
def fan_out_fan_in(context: df.DurableOrchestrationContext):
    n = context.get_input()
    values = yield context.task_all([context.call_activity("double", i) for i in range(n)])
    return sum(values)


@app.orchestration_trigger(context_name="context")
def fan_out_recorded(context: df.DurableOrchestrationContext):
    n = context.get_input()
    values = yield context.task_all([context.call_activity("record", i) for i in range(n)])
    return sum(values)


@app.orchestration_trigger(context_name="context")
def with_retry(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    options = df.RetryOptions(spec["first_ms"], spec["attempts"])
    return (yield context.call_activity_with_retry("flaky", options, spec))


@app.orchestration_trigger(context_name="context")
def fan_out_with_retries(context: df.DurableOrchestrationContext):
    """Retries of many calls interleave: call i fails i % 3 times before it succeeds."""
    options = df.RetryOptions(50, 3)
    calls = [context.call_activity_with_retry("flaky", options, {"key": f"{context.instance_id}-{i}", "fail": i % 3})
             for i in range(context.get_input())]
    return (yield context.task_all(calls))


@app.orchestration_trigger(context_name="context")
def with_backoff(context: df.DurableOrchestrationContext):
    options = TunedRetry(100, 4, 2.0, 300)
    return (yield context.call_activity_with_retry("flaky", options, {"key": context.instance_id, "fail": 9}))


@app.orchestration_trigger(context_name="context")
def generations(context: df.DurableOrchestrationContext):
    state = context.get_input()
    total = state["total"] + (yield context.call_activity("double", state["n"]))
    if state["n"] + 1 < state["limit"]:
        context.continue_as_new({"n": state["n"] + 1, "limit": state["limit"], "total": total})
        return None
    return {"generations": state["limit"], "total": total}


@app.orchestration_trigger(context_name="context")
def timer(context: df.DurableOrchestrationContext):
    start, first = context.current_utc_datetime, context.new_uuid()
    echoed = yield context.call_activity("identity", first)  # recorded in the first episode, replayed later
    yield context.create_timer(start + timedelta(seconds=context.get_input()))
    return {"start": start.isoformat(), "end": context.current_utc_datetime.isoformat(),
            "uuid_replayed_identically": echoed == first, "uuids": [first, context.new_uuid()]}


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    context.set_custom_status({"stage": "warming up"})
    yield context.call_activity("pause", 0.3)
    context.set_custom_status({"stage": "waiting for approval"})
    answer = yield context.wait_for_external_event("approval")
    context.set_custom_status({"stage": "approved"})
    return {"answer": answer}


@app.orchestration_trigger(context_name="context")
def first_of(context: df.DurableOrchestrationContext):
    deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=context.get_input()))
    event = context.wait_for_external_event("go")
    winner = yield context.task_any([event, deadline])
    if winner == event:
        deadline.cancel()
        return "event"
    return "timeout"


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    n = context.get_input()
    first = yield context.call_sub_orchestrator("fan_out_fan_in", n)
    second = yield context.call_sub_orchestrator("fan_out_fan_in", n, f"{context.instance_id}-child")
    errors = []
    for call in (lambda: context.call_sub_orchestrator("failing", "sub boom"),
                 lambda: context.call_sub_orchestrator_with_retry("failing", df.RetryOptions(100, 2), "again")):
        try:
            yield call()
        except Exception as e:  # noqa: BLE001 - the SDK raises a plain Exception for a failed child
            errors.append(str(e))
    return {"first": first, "second": second, "errors": errors}


@app.orchestration_trigger(context_name="context")
def lanes(context: df.DurableOrchestrationContext):
    """Children under ids of its choosing that continue as new, awaited together: what an export's lanes rely on."""
    count, seconds = context.get_input()
    return (yield context.task_all([
        context.call_sub_orchestrator("paused_generations", {"n": 0, "limit": 2, "seconds": seconds},
                                      f"{context.instance_id}-lane{k}") for k in range(count)]))


@app.orchestration_trigger(context_name="context")
def paused_generations(context: df.DurableOrchestrationContext):
    state = context.get_input()
    yield context.call_activity("pause", state["seconds"])
    if state["n"] + 1 < state["limit"]:
        context.continue_as_new({**state, "n": state["n"] + 1})
        return None
    return state["limit"]


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    yield context.call_activity("double", 1)
    raise ValueError(context.get_input())


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    return 2 * value


@app.activity_trigger(input_name="value")
def identity(value):
    return value


@app.activity_trigger(input_name="seconds")
async def pause(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@app.activity_trigger(input_name="value")
def record(value: int) -> int:
    """Append each execution to a file, so a test can see which calls ran more than once."""
    time.sleep(0.02)
    with open(os.environ["DURABLE_SAMPLE_LOG"], "a") as log:
        log.write(f"{value}\n")
    return value


@app.activity_trigger(input_name="spec")
def flaky(spec: dict) -> str:
    """Fail until the attempt number `fail + 1`."""
    _attempts[spec["key"]] = _attempts.get(spec["key"], 0) + 1
    if _attempts[spec["key"]] <= spec["fail"]:
        raise RuntimeError(f"attempt {_attempts[spec['key']]} failed")
    return f"succeeded on attempt {_attempts[spec['key']]}"


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    total = 0
    for i in range(context.get_input()):
        total += yield context.call_activity("double", i)
    return total


@app.orchestration_trigger(context_name="context")
def fail_beside_slow(context: df.DurableOrchestrationContext):
    """task_all of a failing activity and a slow one: the failure is seen at once, the end waits for the slow one."""
    spec = {"key": context.instance_id, "fail": 9}
    yield context.task_all([context.call_activity("flaky", spec), context.call_activity("pause", context.get_input())])


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext):
    """task_any of a quick activity and a loser: a slow activity, an uncancelled timer or a cancelled one."""
    loser_kind, seconds = context.get_input()
    if loser_kind == "activity":
        loser = context.call_activity("pause", seconds)
    else:
        loser = context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    winner = yield context.task_any([context.call_activity("double", 1), loser])
    if loser_kind == "cancelled timer":
        loser.cancel()
    return winner.result


@app.orchestration_trigger(context_name="context")
def race_then_continue(context: df.DurableOrchestrationContext):
    """continue_as_new while a task_any loser still runs: the next generation starts once the loser is done."""
    generation = context.get_input() or 0
    if generation == 1:
        return "second generation"
    yield context.task_any([context.call_activity("double", 1), context.call_activity("pause", 2)])
    context.continue_as_new(generation + 1)


@app.orchestration_trigger(context_name="context")
def refill_window(context: df.DurableOrchestrationContext):
    """Keep `window` pauses in flight, scheduling the next as any one finishes (a throttled fan-out); with
    `nudge`, each refill is yielded beside a zero-length timer."""
    window, total, seconds, nudge = context.get_input()
    running = [context.call_activity("pause", seconds) for _ in range(window)]
    nudges = []
    while running:
        done = yield context.task_any(running + nudges)
        if done in nudges:  # a zero-length timer lets the shim past the refill it awaits
            nudges.remove(done)
            continue
        running.remove(done)
        if window < total:
            running.append(context.call_activity("pause", seconds))
            window += 1
            if nudge:
                nudges.append(context.create_timer(context.current_utc_datetime))
    return total


@app.orchestration_trigger(context_name="context")
def window_own_retries(context: df.DurableOrchestrationContext):
    """A window of `window` flaky calls (call i fails i % 3 times) refilled as each succeeds; a failed call waits
    for the orchestrator's own `wait_ms` timer and runs again. Everything new is yielded beside a zero-length timer."""
    window, total, wait_ms = context.get_input()
    running: dict = {}
    waiting: dict = {}
    nudges: list = []
    results: dict[int, str] = {}
    started = 0
    while len(results) < total:
        while started < total and len(running) + len(waiting) < window:
            spec = {"key": f"{context.instance_id}-{started}", "fail": started % 3}
            running[context.call_activity("flaky", spec)] = started
            started += 1
            nudges.append(context.create_timer(context.current_utc_datetime))
        done = yield context.task_any([*running, *waiting, *nudges])
        if done in nudges:
            nudges.remove(done)
        elif done in waiting:
            i = waiting.pop(done)
            running[context.call_activity("flaky", {"key": f"{context.instance_id}-{i}", "fail": i % 3})] = i
            nudges.append(context.create_timer(context.current_utc_datetime))
        elif done.state is TaskState.FAILED:
            waiting[context.create_timer(context.current_utc_datetime + timedelta(milliseconds=wait_ms))] = \
                running.pop(done)
            nudges.append(context.create_timer(context.current_utc_datetime))
        else:
            results[running.pop(done)] = done.result
    return [results[i] for i in range(total)]


@app.orchestration_trigger(context_name="context")
def two_waits(context: df.DurableOrchestrationContext):
    """Two waits for one event name: one event raised during the pause is buffered, and satisfies only the first."""
    yield context.call_activity("pause", 1.5)
    first = yield context.wait_for_external_event("go")
    second = yield context.wait_for_external_event("go")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def big_status(context: df.DurableOrchestrationContext):
    """Custom status of the given number of characters (16 KB of UTF-16 is 8 192 of them)."""
    context.set_custom_status("x" * context.get_input())
    yield context.call_activity("double", 1)
    return "done"


@app.orchestration_trigger(context_name="context")
def status_then_clear(context: df.DurableOrchestrationContext):
    context.set_custom_status({"stage": "first"})
    yield context.call_activity("double", 1)
    context.set_custom_status(None)
    yield context.wait_for_external_event("finish")
    return "done"


@app.orchestration_trigger(context_name="context")
def long_timer(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(days=context.get_input()))
    return "fired"


@app.orchestration_trigger(context_name="context")
def long_retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(7 * 24 * 3600 * 1000, 2)
    return (yield context.call_activity_with_retry("flaky", options, {"key": context.instance_id, "fail": 9}))


@app.orchestration_trigger(context_name="context")
def one_pause(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("pause", context.get_input()))


@app.orchestration_trigger(context_name="context")
def slow_then_quick(context: df.DurableOrchestrationContext):
    """A slow activity, then a quick one: suspended during the first, the second must wait for the resume."""
    slept = yield context.call_activity("pause", context.get_input())
    doubled = yield context.call_activity("double", 21)
    return [slept, doubled]
