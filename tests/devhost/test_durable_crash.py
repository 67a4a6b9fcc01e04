"""A host killed with SIGKILL mid-orchestration resumes every unfinished instance from the task hub."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from testkit.host import Host, wait_for
from tests.devhost.test_durable_orchestrations import SAMPLE_APP, start, status, wait_until


def test_a_killed_host_resumes_and_no_completed_activity_runs_again(tmp_path: Path) -> None:
    data, log = tmp_path / "hub", tmp_path / "record.log"
    env = {"DURABLE_SAMPLE_LOG": str(log)}
    host = Host(SAMPLE_APP, data, env=env).start()
    try:
        fan_out = start(host, "fan_out_recorded", 500)
        timer = start(host, "timer", 1.0)
        wait_for(lambda: log.exists() and len(log.read_text().split()) >= 150, message="150 activity executions")
        before = status(fan_out, showHistory="true", showHistoryOutput="true")
    finally:
        host.kill()
    completed_before = [e["Result"] for e in before["historyEvents"] if e["EventType"] == "TaskCompleted"]
    assert before["runtimeStatus"] == "Running" and 0 < len(completed_before) < 500

    again = Host(SAMPLE_APP, data, env=env, port=host.port).start()
    try:
        final = wait_until(fan_out, showHistory="true", showHistoryOutput="true")
        assert wait_until(timer)["runtimeStatus"] == "Completed"
    finally:
        again.stop()
    assert (final["runtimeStatus"], final["output"]) == ("Completed", sum(range(500)))
    completed = [e["Result"] for e in final["historyEvents"] if e["EventType"] == "TaskCompleted"]
    assert sorted(completed) == list(range(500))  # each activity completed exactly once in the history
    runs = Counter(int(line) for line in log.read_text().split())
    assert set(runs) == set(range(500))
    assert all(runs[value] == 1 for value in completed_before)  # committed completions were not re-run
