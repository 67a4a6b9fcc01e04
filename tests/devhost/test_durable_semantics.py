"""Where the real Durable extension's semantics are not the simplest ones, the local host keeps to them.

Each case runs a real orchestration of the sample app through the real SDK and the worker, over HTTP. The rules and
their sources (azure-functions-durable-extension's OutOfProcOrchestrationShim, DurableTask.Core's
TaskOrchestrationExecutor and RetryInterceptor) are in devhost/replay.py and devhost/README.md.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
import requests

from testkit.host import Host, wait_for
from tests.devhost.test_durable_orchestrations import SAMPLE_APP, start, status, wait_until


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("semantics") / "hub"
    host = Host(SAMPLE_APP, data).start()
    yield host
    host.stop()


def elapsed(final: dict) -> float:
    """Seconds from the start to the end the host recorded (its status times have whole seconds)."""
    return (datetime.fromisoformat(final["lastUpdatedTime"]) - datetime.fromisoformat(final["createdTime"])
            ).total_seconds()


def history(links: dict) -> list[dict]:
    """The instance's history so far (none while it is Pending)."""
    return status(links, showHistory="true").get("historyEvents") or []


def stays_running(links: dict, seconds: float) -> None:
    """The instance has not ended at any look for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert status(links)["runtimeStatus"] in ("Pending", "Running")
        time.sleep(0.2)


def refill_window(host: Host, nudge: bool) -> tuple[dict, list[datetime], list[datetime]]:
    """A window of 3 over six 1-second activities, each refill beside a zero-length timer if `nudge`: the
    ended instance, and when its activities were scheduled and completed (each in order)."""
    links = start(host, "refill_window", [3, 6, 1, nudge])
    final = wait_until(links, showHistory="true", timeout=30)
    assert final["runtimeStatus"] == "Completed"
    done = [e for e in final["historyEvents"] if e["EventType"] == "TaskCompleted"]
    assert len(done) == 6
    return (final, sorted(datetime.fromisoformat(e["ScheduledTime"]) for e in done),
            sorted(datetime.fromisoformat(e["Timestamp"]) for e in done))


def test_a_task_any_refill_window_schedules_each_refill_only_once_the_one_before_has_finished(host: Host) -> None:
    # The shim awaits each yield's new actions in turn (ProcessAsyncActionsV2): a refill yielded as
    # task_any([...running, new]) is awaited as WhenAny(new) alone, so the next refill waits for it.
    final, scheduled, completed = refill_window(host, nudge=False)
    # A free slot after the first three would start the fifth at once; it starts after the fourth has ended.
    assert scheduled[4] >= completed[3] and scheduled[5] >= completed[4]
    assert elapsed(final) >= 3.5  # a sliding window of 3 would take 2 s


def test_a_refill_yielded_beside_a_zero_length_timer_keeps_the_window_full(host: Host) -> None:
    # WhenAny(new, timer): the timer fires at once, so the shim moves on to the next refill when it comes.
    final, scheduled, completed = refill_window(host, nudge=True)
    assert scheduled[4] < completed[3] and scheduled[5] < completed[3]  # both refills started before the fourth ended
    assert elapsed(final) < 3.5


def test_a_failed_task_all_ends_only_when_its_slow_sibling_has_finished(host: Host) -> None:
    links = start(host, "fail_beside_slow", 4)
    stays_running(links, 2.5)  # the failure came at once; the 4 s sibling still runs
    final = wait_until(links, showHistory="true")
    assert final["runtimeStatus"] == "Failed" and "attempt 1 failed" in final["output"]
    kinds = [e["EventType"] for e in final["historyEvents"]]
    assert kinds.index("TaskCompleted") < kinds.index("ExecutionCompleted")  # the sibling's result is in history
    assert elapsed(final) >= 3


@pytest.mark.parametrize("loser,ends_at_once", [("activity", False), ("timer", False), ("cancelled timer", True)])
def test_a_task_any_ends_when_its_losers_are_done_or_cancelled(host: Host, loser: str, ends_at_once: bool) -> None:
    links = start(host, "race", [loser, 4])
    if ends_at_once:
        final = wait_until(links, timeout=10)
        assert final["runtimeStatus"] == "Completed" and elapsed(final) < 3
        return
    stays_running(links, 2)
    final = wait_until(links)
    assert (final["runtimeStatus"], final["output"]) == ("Completed", 2)
    assert elapsed(final) >= 3  # the 4 s loser, less the status time's truncation to whole seconds


def test_continue_as_new_waits_for_open_tasks(host: Host) -> None:
    links = start(host, "race_then_continue", 0)
    stays_running(links, 1)
    final = wait_until(links)
    assert (final["runtimeStatus"], final["output"]) == ("Completed", "second generation")


def test_the_last_retry_does_not_wait(host: Host) -> None:
    links = start(host, "with_retry", {"key": f"last-{time.time()}", "fail": 5, "first_ms": 3000, "attempts": 2})
    final = wait_until(links, timeout=30)
    assert final["runtimeStatus"] == "Failed"
    assert elapsed(final) < 5  # one 3 s back-off between the two attempts, none after the last (which made 6 s)


def test_one_buffered_event_satisfies_one_wait(host: Host) -> None:
    links = start(host, "two_waits")
    url = links["sendEventPostUri"].replace("{eventName}", "go")
    requests.post(url, json="first", timeout=30)  # during the pause: no wait is open yet
    wait_for(lambda: any(e["EventType"] == "TaskCompleted" for e in history(links)))
    stays_running(links, 1)  # the SDK alone would hand the one buffered event to both waits
    requests.post(url, json="second", timeout=30)
    final = wait_until(links)
    assert final["runtimeStatus"] == "Completed"


def test_custom_status_over_16_kb_of_utf16_fails_the_orchestration(host: Host) -> None:
    assert wait_until(start(host, "big_status", 8000))["runtimeStatus"] == "Completed"
    final = wait_until(start(host, "big_status", 9000))
    assert final["runtimeStatus"] == "Failed"
    assert "must not exceed 16 KB" in final["output"]


def test_custom_status_is_cleared_when_the_orchestrator_clears_it(host: Host) -> None:
    links = start(host, "status_then_clear")
    wait_for(lambda: any(e["EventType"] == "TaskCompleted" for e in history(links))
             and status(links)["customStatus"] is None, message="custom status cleared")
    requests.post(links["sendEventPostUri"].replace("{eventName}", "finish"), json=1, timeout=30)
    assert wait_until(links)["customStatus"] is None


def test_a_long_timer_is_split_as_the_azure_storage_provider_splits_it(host: Host) -> None:
    links = start(host, "long_timer", 10)
    [timer] = wait_for(lambda: [e for e in history(links) if e["EventType"] == "TimerCreated"])
    first_leg = datetime.fromisoformat(timer["FireAt"]) - datetime.fromisoformat(timer["Timestamp"])
    assert timedelta(days=2.99) < first_leg <= timedelta(days=3)  # 3-day legs for timers over 6 days
    requests.post(links["terminatePostUri"].replace("{text}", "done"), timeout=30)


def test_retry_intervals_over_six_days_are_refused(host: Host) -> None:
    final = wait_until(start(host, "long_retry"))
    assert final["runtimeStatus"] == "Failed"
    assert "maximum of 6 days" in final["output"]


def test_an_activity_over_the_function_timeout_fails_with_the_hosts_message(host: Host) -> None:
    final = wait_until(start(host, "one_pause", 9), timeout=30)  # host.json: functionTimeout 00:00:06
    assert final["runtimeStatus"] == "Failed"
    assert "Timeout value of 00:00:06 was exceeded by function: Functions.pause" in final["output"]
    assert elapsed(final) < 9


def test_suspended_during_an_activity_it_finishes_but_nothing_new_starts_until_resume(host: Host) -> None:
    """What pausing an export relies on (DurableTask.Core: a suspended orchestration runs no orchestrator code, so
    it schedules nothing; work already dispatched completes and its result waits for the resume)."""
    links = start(host, "slow_then_quick", 1.5)
    wait_for(lambda: any(e["EventType"] == "TaskScheduled" for e in history(links)), timeout=30)
    assert requests.post(links["suspendPostUri"].replace("{text}", "pause"), timeout=30).status_code == 202
    wait_until(links, {"Suspended"}, timeout=30)
    deadline = time.monotonic() + 3  # twice the activity's length: it has ended meanwhile
    while time.monotonic() < deadline:
        assert status(links)["runtimeStatus"] == "Suspended"
        assert [e.get("Name") for e in history(links) if e["EventType"] == "TaskScheduled"] == ["pause"]
        time.sleep(0.2)
    assert requests.post(links["resumePostUri"].replace("{text}", "go"), timeout=30).status_code == 202
    final = wait_until(links, timeout=30)
    assert (final["runtimeStatus"], final["output"]) == ("Completed", [1.5, 42])


def test_a_window_that_schedules_its_own_retry_timers_replays_deterministically(host: Host) -> None:
    # The export's pattern (orchestrations/export.py): failed calls wait for the orchestrator's own timer, and
    # every yield with something new carries a zero-length timer, so the replay of each episode walks the
    # actions in the order they were yielded, whatever failed when.
    links = start(host, "window_own_retries", [3, 9, 300])
    final = wait_until(links, showHistory="true", timeout=60)
    assert final["runtimeStatus"] == "Completed", final.get("output")
    assert final["output"] == [f"succeeded on attempt {i % 3 + 1}" for i in range(9)]
    events = final["historyEvents"]
    assert sum(e["EventType"] == "TaskFailed" for e in events) == 9  # 0 + 1 + 2 failures for each three calls
    timers = [e["FireAt"] for e in events if e["EventType"] == "TimerCreated"]
    assert len(timers) > 9 and sorted(timers) == sorted(e["FireAt"] for e in events if e["EventType"] == "TimerFired")

def lane(links: dict, n: int) -> dict:
    """The links of the instance's sub-orchestration `<id>-lane<n>` (an export's lanes are named so)."""
    return {**links, "statusQueryGetUri": links["statusQueryGetUri"].replace(links["id"], f"{links['id']}-lane{n}")}


def test_sub_orchestrations_under_chosen_ids_that_continue_as_new_run_at_once_and_report_their_last_result(
        host: Host) -> None:
    """Each lane of an export is a sub-orchestration that continues as new every generation; its parent gets the
    last generation's result (DurableTask.Core keeps the parent's link across ContinueAsNew)."""
    links = start(host, "lanes", [3, 1.0])
    final = wait_until(links, timeout=60)
    assert (final["runtimeStatus"], final["output"]) == ("Completed", [2, 2, 2])
    assert [status(lane(links, n))["runtimeStatus"] for n in range(3)] == ["Completed"] * 3
    assert elapsed(final) < 5  # 3 lanes of two 1-second generations: together, not one after the other (6 s)


@pytest.mark.parametrize("action", ["suspend", "terminate"])
def test_suspending_or_terminating_a_parent_leaves_its_sub_orchestrations_running(host: Host, action: str) -> None:
    """DurableTask.Core's TaskHubClient sends ExecutionSuspendedEvent / ExecutionTerminatedEvent to the one instance
    named, and the extension's TerminateAsync says it has no effect on sub-orchestrations: a cancel or pause of an
    export must reach each lane itself (endpoints/operations.py)."""
    links = start(host, "lanes", [2, 1.5])
    wait_for(lambda: [e["EventType"] for e in history(links)].count("SubOrchestrationInstanceCreated") == 2, timeout=30)
    for n in range(2):
        wait_until(lane(links, n), {"Running"}, timeout=30)
    uri = links[f"{action}PostUri"].replace("{text}", "parent only")
    assert requests.post(uri, timeout=30).status_code == 202
    wait_until(links, {"Suspended" if action == "suspend" else "Terminated"}, timeout=30)
    children = [wait_until(lane(links, n), timeout=30) for n in range(2)]
    assert [(c["runtimeStatus"], c["output"]) for c in children] == [("Completed", 2)] * 2
    assert status(links)["runtimeStatus"] == ("Suspended" if action == "suspend" else "Terminated")
    if action == "suspend":  # the children's results waited for the resume
        assert requests.post(links["resumePostUri"].replace("{text}", "go"), timeout=30).status_code == 202
        assert wait_until(links, timeout=30)["output"] == [2, 2]
