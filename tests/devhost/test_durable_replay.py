"""Sequence numbers of scheduled work, worked out from the SDK's actions as the extension's shim does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.durable_functions.models.actions import (
    CallActivityAction,
    CallActivityWithRetryAction,
    CallHttpAction,
)
from azure.durable_functions.models.actions.WhenAllAction import WhenAllAction
from azure.durable_functions.models.actions.WhenAnyAction import WhenAnyAction
from azure.durable_functions.models.DurableHttpRequest import DurableHttpRequest
from azure.durable_functions.models.RetryOptions import RetryOptions

from devhost import history as h
from devhost.replay import ReplayError, plan_episode, retry_delay

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float) -> str:
    return h.iso(T0 + timedelta(seconds=seconds))


def started(seconds: float = 0) -> list[dict]:
    return [h.event(h.EventType.OrchestratorStarted, at(seconds)),
            h.execution_started(at(seconds), "i", "e", "orch", None)]


def episode(seconds: float, *events: dict) -> list[dict]:
    return [h.event(h.EventType.OrchestratorStarted, at(seconds)), *events]


def scheduled(task_id: int, name: str) -> dict:
    return h.event(h.EventType.TaskScheduled, at(0), task_id, Name=name, Input=None)


def timer_created(task_id: int) -> dict:
    return h.event(h.EventType.TimerCreated, at(0), task_id, FireAt=at(1))


def plan(history: list[dict], *actions) -> list[tuple]:
    result = plan_episode(history, [[a.to_json() for a in actions]], 1, "e")
    return [(d.kind, d.event_id, d.name or d.fire_at) for d in result.decisions]


def activity(name: str) -> CallActivityAction:
    return CallActivityAction(name, None)


def test_a_fan_out_numbers_its_calls_in_order() -> None:
    assert plan(started(), WhenAllAction([activity("a"), activity("b"), activity("c")])) == [
        ("activity", 0, "a"), ("activity", 1, "b"), ("activity", 2, "c")]


def test_only_work_missing_from_the_history_is_new() -> None:
    history = [*started(), scheduled(0, "a"), *episode(1, h.task_completed(at(1), 0, "1"))]
    assert plan(history, activity("a"), activity("b")) == [("activity", 1, "b")]


def test_the_next_call_waits_for_the_one_before() -> None:
    # The shim awaits `a` before it reaches `b`: however the SDK produced `b`, it is scheduled only once `a` is done.
    history = [*started(), scheduled(0, "a")]
    assert plan(history, activity("a"), activity("b")) == []
    done = [*history, *episode(1, h.task_completed(at(1), 0, "1"))]
    assert plan(done, activity("a"), activity("b")) == [("activity", 1, "b")]


def test_a_task_all_with_a_failed_child_is_awaited_until_its_siblings_finish() -> None:
    # Task.WhenAll finishes when every child has: the call after a caught failure waits for the running sibling.
    fan_out = WhenAllAction([activity("a"), activity("b")])
    history = [*started(), scheduled(0, "a"), scheduled(1, "b"),
               *episode(1, h.task_failed(at(1), 0, "boom", None))]
    assert plan(history, fan_out, activity("c")) == []
    assert not plan_episode(history, [[fan_out.to_json()]], 1, "e").settled  # an error would not end it yet
    finished = [*history, *episode(2, h.task_completed(at(2), 1, "2"))]
    assert plan(finished, fan_out, activity("c")) == [("activity", 2, "c")]
    assert plan_episode(finished, [[fan_out.to_json()]], 1, "e").settled


def test_one_buffered_event_satisfies_one_wait() -> None:
    from azure.durable_functions.models.actions.WaitForExternalEventAction import WaitForExternalEventAction
    waits = [WaitForExternalEventAction("go").to_json(), WaitForExternalEventAction("GO").to_json(), activity("a").to_json()]
    raised = [*started(), h.event(h.EventType.EventRaised, at(0), Name="go", Input="1")]
    assert plan_episode(raised, [waits], 1, "e").decisions == []  # the second wait blocks: no `a` yet
    twice = [*raised, *episode(1, h.event(h.EventType.EventRaised, at(1), Name="Go", Input="2"))]
    assert [d.name for d in plan_episode(twice, [waits], 1, "e").decisions] == ["a"]  # names are case-insensitive


def test_retry_intervals_over_six_days_are_refused() -> None:
    options = RetryOptions(first_retry_interval_in_milliseconds=7 * 86_400_000, max_number_of_attempts=2)
    with pytest.raises(ReplayError, match="maximum of 6 days"):
        plan(started(), CallActivityWithRetryAction("a", options))


def test_a_failed_retryable_call_gets_a_timer_then_a_new_attempt() -> None:
    retry = CallActivityWithRetryAction("flaky", RetryOptions(2000, 3), None)
    history = [*started(), scheduled(0, "flaky"), *episode(5, h.task_failed(at(5), 0, "boom", None))]
    assert plan(history, retry) == [("timer", 1, at(7))]
    history += [timer_created(1), *episode(7, h.event(h.EventType.TimerFired, at(7), TimerId=1, FireAt=at(7)))]
    assert plan(history, retry) == [("activity", 2, "flaky")]


def test_retry_ids_interleave_with_calls_made_in_the_same_episode() -> None:
    # task_any([retryable, plain]); plain wins and the orchestrator calls `next`; then the retryable one fails.
    race = WhenAnyAction([CallActivityWithRetryAction("flaky", RetryOptions(1000, 2), None), activity("plain")])
    history = [*started(), scheduled(0, "flaky"), scheduled(1, "plain"),
               *episode(2, h.task_completed(at(2), 1, "1"), h.task_failed(at(2), 0, "boom", None))]
    assert plan(history, race, activity("next")) == [("activity", 2, "next"), ("timer", 3, at(3))]


def test_a_different_call_at_a_recorded_position_is_non_determinism() -> None:
    history = [*started(), scheduled(0, "a"), *episode(1, h.task_completed(at(1), 0, "1"))]
    with pytest.raises(ReplayError, match="Non-deterministic"):
        plan(history, activity("b"))


def test_apis_devhost_does_not_offer_are_refused_by_name() -> None:
    with pytest.raises(ReplayError, match="call_http"):
        plan(started(), CallHttpAction(DurableHttpRequest("GET", "http://example.org")))


def test_retry_delays_follow_backoff_cap_and_timeout() -> None:
    options = {"firstRetryIntervalInMilliseconds": 100, "maxNumberOfAttempts": 5, "backoffCoefficient": 3,
               "maxRetryIntervalInMilliseconds": 1000, "retryTimeoutInMilliseconds": 5000}
    delays = [retry_delay(options, attempt, T0, T0) for attempt in (1, 2, 3, 4)]
    assert delays == [timedelta(milliseconds=ms) for ms in (100, 300, 900, 1000)]
    assert retry_delay(options, 2, T0, T0 + timedelta(seconds=5)) is None
    assert retry_delay({"firstRetryIntervalInMilliseconds": 250, "maxNumberOfAttempts": 2}, 3, T0, T0) == \
        timedelta(milliseconds=250)
