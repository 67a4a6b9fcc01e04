"""Durable Functions on the local host: real orchestrations of the sample app, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.durable_functions import DurableOrchestrationClient
from azure.durable_functions.models.utils import http_utils

from testkit.host import Host, wait_for

SAMPLE_APP = Path(__file__).parent / "apps" / "durable_sample"
ENDED = {"Completed", "Failed", "Terminated", "Canceled"}


def start(host: Host, name: str, payload: Any = None, instance_id: str | None = None) -> dict[str, str]:
    """Start an orchestration through the app's HTTP starter; returns the check-status payload."""
    url = f"{host.base_url}/api/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    r = requests.post(url, data=None if payload is None else json.dumps(payload), timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def status(links: dict[str, str], **params: str) -> dict[str, Any]:
    r = requests.get(links["statusQueryGetUri"], params=params, timeout=30)
    assert r.status_code in (200, 202), r.text
    return r.json()


def wait_until(links: dict[str, str], states: set[str] = ENDED, timeout: float = 60, **params: str) -> dict[str, Any]:
    return wait_for(lambda: (s := status(links, **params))["runtimeStatus"] in states and s, timeout=timeout,
                    message=f"{links['id']} to reach {sorted(states)}")


class RealClient:
    """The SDK's own DurableOrchestrationClient, built from the binding the host hands to functions."""

    def __init__(self, host: Host):
        binding = requests.get(f"{host.base_url}/api/binding", timeout=30).json()
        self.client = DurableOrchestrationClient(json.dumps(binding))
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        return lambda *args, **kwargs: self.loop.run_until_complete(method(*args, **kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(http_utils._close_session())
        self.loop.close()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("durable") / "hub"
    host = Host(SAMPLE_APP, data, env={"DURABLE_SAMPLE_LOG": str(data.parent / "record.log")}).start()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def client(host: Host):
    client = RealClient(host)
    yield client
    client.close()


def test_fan_out_of_200_activities_fans_in_their_sum(host: Host) -> None:
    links = start(host, "fan_out_fan_in", 200)
    final = wait_until(links)
    assert final["runtimeStatus"] == "Completed"
    assert final["output"] == sum(2 * i for i in range(200))
    events = status(links, showHistory="true")["historyEvents"]
    assert sum(e["EventType"] == "TaskCompleted" for e in events) == 200


def test_start_and_wait_returns_the_output(host: Host) -> None:
    r = requests.post(f"{host.base_url}/api/run/fan_out_fan_in", data="5", timeout=60)
    assert (r.status_code, r.json()) == (200, 20)


def test_retry_succeeds_on_the_third_attempt(host: Host) -> None:
    links = start(host, "with_retry", {"key": uuid.uuid4().hex, "fail": 2, "first_ms": 100, "attempts": 3})
    final = wait_until(links, showHistory="true")
    assert (final["runtimeStatus"], final["output"]) == ("Completed", "succeeded on attempt 3")
    kinds = [e["EventType"] for e in final["historyEvents"]]
    assert kinds.count("TaskFailed") == 2 and kinds.count("TimerFired") == 2  # retries are durable timers


def test_retry_that_exhausts_its_attempts_fails_with_the_reason(host: Host) -> None:
    links = start(host, "with_retry", {"key": uuid.uuid4().hex, "fail": 5, "first_ms": 100, "attempts": 2})
    final = wait_until(links)
    assert final["runtimeStatus"] == "Failed"
    assert final["output"].startswith("Orchestrator function 'with_retry' failed: Activity function 'flaky' failed: "
                                      "RuntimeError: attempt 2 failed")


def test_retries_of_a_fan_out_interleave(host: Host) -> None:
    final = wait_until(start(host, "fan_out_with_retries", 30))
    assert final["runtimeStatus"] == "Completed", final["output"]
    assert final["output"] == [f"succeeded on attempt {i % 3 + 1}" for i in range(30)]


def test_retry_backoff_and_maximum_interval_space_the_attempts(host: Host) -> None:
    final = wait_until(start(host, "with_backoff"), showHistory="true")
    assert final["runtimeStatus"] == "Failed"
    events = final["historyEvents"]
    created = [i for i, e in enumerate(events) if e["EventType"] == "TimerCreated"]
    assert len(created) == 4
    # Each timer fires its delay after the failure that caused it (the orchestration's time, when the episode
    # replaying that failure started); the slack allows for a loaded machine.
    failed = [max(j for j in range(i) if events[j]["EventType"] == "TaskFailed") for i in created]
    delays = [(datetime.fromisoformat(events[i]["FireAt"]) - datetime.fromisoformat(events[f]["Timestamp"]))
              .total_seconds() for i, f in zip(created, failed, strict=True)]
    for delay, expected in zip(delays[:3], [0.1, 0.2, 0.3], strict=True):  # 100 ms doubling, capped at 300 ms
        assert expected <= delay < expected + 1.0
    last = events[created[3]]
    last_wait = (datetime.fromisoformat(last["FireAt"]) - datetime.fromisoformat(last["Timestamp"])).total_seconds()
    assert last_wait <= 0  # after the last attempt a zero-length timer: the failure is not delayed (DTFx >= 2.7)


def test_fifty_generations_of_continue_as_new_reset_the_history(host: Host) -> None:
    links = start(host, "generations", {"n": 0, "limit": 50, "total": 0})
    final = wait_until(links, showHistory="true", timeout=120)
    assert final["runtimeStatus"] == "Completed"
    assert final["output"] == {"generations": 50, "total": sum(2 * n for n in range(50))}
    assert final["input"] == '{"n": 49, "limit": 50, "total": 2352}'  # the last generation's input
    kinds = [e["EventType"] for e in final["historyEvents"]]
    assert kinds == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]


def test_a_durable_timer_delays_the_orchestration(host: Host) -> None:
    final = wait_until(start(host, "timer", 1.5))
    assert final["runtimeStatus"] == "Completed"
    waited = datetime.fromisoformat(final["output"]["end"]) - datetime.fromisoformat(final["output"]["start"])
    assert waited.total_seconds() >= 1.5
    assert final["output"]["uuid_replayed_identically"]  # new_uuid gives the same value on every replay
    assert len(set(final["output"]["uuids"])) == 2


def test_external_event_with_custom_status_visible_while_running(host: Host) -> None:
    links = start(host, "approval")
    waiting = wait_for(lambda: (s := status(links))["customStatus"] == {"stage": "waiting for approval"} and s)
    assert waiting["runtimeStatus"] == "Running"
    url = links["sendEventPostUri"].replace("{eventName}", "approval")
    assert requests.post(url, json={"by": "alice"}, timeout=30).status_code == 202
    final = wait_until(links)
    assert final["output"] == {"answer": {"by": "alice"}}
    assert final["customStatus"] == {"stage": "approved"}


def test_an_event_raised_before_the_wait_is_kept(host: Host) -> None:
    links = start(host, "approval")
    requests.post(links["sendEventPostUri"].replace("{eventName}", "approval"), json="early", timeout=30)
    assert wait_until(links)["output"] == {"answer": "early"}


def test_task_any_between_an_event_and_a_timer(host: Host) -> None:
    assert wait_until(start(host, "first_of", 0.5))["output"] == "timeout"
    links = start(host, "first_of", 30)
    requests.post(links["sendEventPostUri"].replace("{eventName}", "go"), json=1, timeout=30)
    assert wait_until(links, timeout=20)["output"] == "event"


def test_terminate_ends_a_waiting_orchestration_with_the_reason(host: Host) -> None:
    links = start(host, "approval")
    wait_until(links, {"Running"})
    url = links["terminatePostUri"].replace("{text}", "no longer needed")
    assert requests.post(url, timeout=30).status_code == 202
    final = wait_until(links)
    assert (final["runtimeStatus"], final["output"]) == ("Terminated", "no longer needed")
    assert requests.post(url, timeout=30).status_code == 410


def test_sub_orchestrations_return_results_and_failures_to_the_parent(host: Host) -> None:
    links = start(host, "parent", 10)
    final = wait_until(links)
    assert final["runtimeStatus"] == "Completed", final
    assert final["output"]["first"] == final["output"]["second"] == 90
    plain, retried = final["output"]["errors"]
    assert "Orchestrator function 'failing' failed: sub boom" in plain
    assert "Orchestrator function 'failing' failed: again" in retried
    kinds = [e["EventType"] for e in status(links, showHistory="true")["historyEvents"]]
    assert kinds.count("SubOrchestrationInstanceFailed") == 3  # one plain call, two attempts of the retried one
    child = requests.get(links["statusQueryGetUri"].replace(links["id"], f"{links['id']}-child"), timeout=30).json()
    assert (child["runtimeStatus"], child["output"]) == ("Completed", 90)


def test_suspend_holds_events_until_resume(host: Host) -> None:
    links = start(host, "approval")
    wait_for(lambda: status(links)["customStatus"] == {"stage": "waiting for approval"})
    assert requests.post(links["suspendPostUri"].replace("{text}", "hold"), timeout=30).status_code == 202
    wait_until(links, {"Suspended"})
    requests.post(links["sendEventPostUri"].replace("{eventName}", "approval"), json="yes", timeout=30)
    assert status(links)["runtimeStatus"] == "Suspended"
    assert requests.post(links["resumePostUri"].replace("{text}", "go"), timeout=30).status_code == 202
    final = wait_until(links)
    assert final["output"] == {"answer": "yes"}
    kinds = [e["EventType"] for e in status(links, showHistory="true")["historyEvents"]]
    assert kinds.index("ExecutionSuspended") < kinds.index("ExecutionResumed") < kinds.index("EventRaised")


def test_the_real_client_starts_lists_and_purges(host: Host, client: RealClient) -> None:
    from azure.durable_functions import OrchestrationRuntimeStatus as S

    instance = f"listed-{uuid.uuid4().hex[:8]}"
    assert client.start_new("fan_out_fan_in", instance, 3) == instance
    waiting = client.start_new("approval", f"waiting-{uuid.uuid4().hex[:8]}")
    with pytest.raises(Exception, match="already exists"):
        client.start_new("approval", waiting)
    with pytest.raises(Exception, match="doesn't exist"):
        client.start_new("no_such_orchestrator")
    wait_for(lambda: client.get_status(instance).runtime_status == S.Completed)
    done = client.get_status(instance, show_history=True, show_history_output=True)
    assert done.output == 6 and done.input_ == "3"
    assert [e["EventType"] for e in done.historyEvents].count("TaskCompleted") == 3  # the host says historyEvents
    completed = {s.instance_id for s in client.get_status_by(runtime_status=[S.Completed])}
    running = {s.instance_id for s in client.get_status_by(runtime_status=[S.Running, S.Pending])}
    assert instance in completed and instance not in running and waiting in running
    created = done.created_time
    assert instance in {s.instance_id for s in client.get_status_by(created_time_from=created)}
    client.suspend(waiting, "hold")
    wait_for(lambda: client.get_status(waiting).runtime_status == S.Suspended)
    client.resume(waiting, "go on")
    wait_for(lambda: client.get_status(waiting).runtime_status == S.Running)
    client.raise_event(waiting, "approval", {"by": "bob"})
    answered = wait_for(lambda: (s := client.get_status(waiting)).runtime_status == S.Completed and s)
    # The client posts json.dumps(data) as a JSON string, which the host keeps as a string: the orchestrator
    # receives '{"by": "bob"}', as under the real host (azure-functions-durable-python issue #295).
    assert answered.output == {"answer": '{"by": "bob"}'}
    assert client.purge_instance_history(instance).instances_deleted == 1
    assert not client.get_status(instance)
    assert client.purge_instance_history(instance).instances_deleted == 0
    purged = client.purge_instance_history_by(created_time_from=created, runtime_status=[S.Completed])
    assert purged.instances_deleted >= 1 and not client.get_status(waiting)


def test_an_ended_instance_id_can_be_started_again(host: Host) -> None:
    instance = f"again-{uuid.uuid4().hex[:8]}"
    assert wait_until(start(host, "fan_out_fan_in", 1, instance))["output"] == 0
    assert wait_until(start(host, "fan_out_fan_in", 4, instance))["output"] == 12


def test_listing_pages_with_a_continuation_token(host: Host) -> None:
    for _ in range(3):
        start(host, "fan_out_fan_in", 1)
    url = f"{host.base_url}/runtime/webhooks/durabletask/instances"
    seen, token = [], ""
    while True:
        r = requests.get(url, params={"top": "2"}, headers={"x-ms-continuation-token": token}, timeout=30)
        assert r.status_code == 200 and len(r.json()) <= 2
        seen += [s["instanceId"] for s in r.json()]
        token = r.headers["x-ms-continuation-token"]
        if not token:
            break
    assert len(seen) == len(set(seen)) >= 3
    assert len(seen) == len(requests.get(url, params={"top": "1000"}, timeout=30).json())


def test_bad_requests_get_clear_errors(host: Host) -> None:
    base = f"{host.base_url}/runtime/webhooks/durabletask"
    assert requests.get(f"{base}/instances/nope", timeout=30).status_code == 404
    r = requests.get(f"{base}/instances", params={"runtimeStatus": "Sleeping"}, timeout=30)
    assert r.status_code == 400 and "runtimeStatus" in r.json()["Message"]
    r = requests.post(f"{base}/orchestrators/fan_out_fan_in", data="{not json", timeout=30)
    assert r.status_code == 400
    r = requests.post(f"{base}/orchestrators/fan_out_fan_in/bad%23id", data="1", timeout=30)
    assert r.status_code == 400 and "instance ids" in r.json()["ExceptionMessage"]
    links = start(host, "approval")
    r = requests.post(links["sendEventPostUri"].replace("{eventName}", "approval"), data="x",
                      headers={"Content-Type": "text/plain"}, timeout=30)
    assert r.status_code == 400
    assert requests.post(links["resumePostUri"].replace("{text}", "x"), timeout=30).status_code == 409
    requests.post(links["terminatePostUri"].replace("{text}", "done"), timeout=30)


def test_each_execution_is_logged_with_instance_and_duration_but_never_its_payload(host: Host) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    links = start(host, "with_retry", {"key": secret, "fail": 1, "first_ms": 50, "attempts": 2})
    assert wait_until(links)["runtimeStatus"] == "Completed"
    log = host.log()
    assert f"Executed 'Functions.flaky' (Failed, InstanceId={links['id']}" in log
    assert re.search(rf"Executed 'Functions.with_retry' \(Succeeded, InstanceId={links['id']}, Id=\S+, "
                     r"Duration=\d+ms\)", log)
    assert secret not in log


def test_verbose_logs_replay_details(tmp_path: Path) -> None:
    host = Host(SAMPLE_APP, tmp_path / "hub", extra_args=["--verbose"]).start()
    try:
        links = start(host, "fan_out_fan_in", 3)
        wait_until(links)
        assert re.search(rf"{links['id']}: replayed \d+ history events, \d+ new; scheduled 3 activity", host.log())
    finally:
        host.stop()
