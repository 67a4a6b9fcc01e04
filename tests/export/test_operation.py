"""The operation view computed from durable status: statuses per route version, progress, clean errors."""

from __future__ import annotations

import pytest

from shared.export.operation import failure_reason, is_operation_id, operation_view

CHECKPOINT = {"createdTime": "2024-01-01T00:00:00.000001Z", "errorHref": "https://a/c/op/errors.log",
              "exported": 0, "skipped": 0, "destination": {"secret": "gAAAA-encrypted"}}


def durable(runtime: str, custom=None, output=None, with_input=True) -> dict:
    return {"name": "export_orchestrator", "instanceId": "ab" * 16, "runtimeStatus": runtime,
            "createdTime": "2024-01-01T00:05:00Z", "lastUpdatedTime": "2024-01-01T00:06:00Z",
            "customStatus": custom, "input": CHECKPOINT if with_input else None, "output": output}


@pytest.mark.parametrize("runtime,v1,v2", [
    ("Pending", "notStarted", "notStarted"), ("Running", "running", "running"),
    ("ContinuedAsNew", "running", "running"), ("Completed", "completed", "succeeded"),
    ("Failed", "failed", "failed"), ("Terminated", "canceled", "canceled"),
])
def test_status_names_follow_the_route_version(runtime, v1, v2):
    assert operation_view(durable(runtime), "v1")["status"] == v1
    assert operation_view(durable(runtime), "v2")["status"] == v2


def test_progress_and_first_created_time_come_from_the_latest_generation():
    custom = {**CHECKPOINT, "exported": 40, "skipped": 2, "generation": 5}
    view = operation_view(durable("Running", custom=custom, with_input=False), "v1")
    assert view == {
        "operationId": "ab" * 16, "type": "export", "createdTime": "2024-01-01T00:00:00.000001Z",
        "lastUpdatedTime": "2024-01-01T00:06:00Z", "status": "running",
        "results": {"errorHref": "https://a/c/op/errors.log", "exported": 40, "skipped": 2}}


def test_before_the_first_generation_the_checkpoint_input_gives_the_results_and_never_the_destination():
    view = operation_view(durable("Pending"), "v1")
    assert view["results"] == {"errorHref": "https://a/c/op/errors.log", "exported": 0, "skipped": 0}
    assert "gAAAA" not in str(view)


def test_a_failure_shows_one_clean_reason():
    custom = {**CHECKPOINT, "error": "container 'x' in storage account 'y' does not exist"}
    view = operation_view(durable("Failed", custom=custom), "v2")
    assert view["errors"] == ["container 'x' in storage account 'y' does not exist"]
    output = ("Orchestrator function 'export_orchestrator' failed: Activity function 'export_copy_batch' failed: "
              "shared.export.copy.CopyFailed: boom https://a/c?sv=1&sig=SECRET \n Traceback ...")
    assert failure_reason(output) == "boom https://a/c?sv=1&sig=<redacted>"


def test_operation_ids_are_32_lowercase_hex():
    assert is_operation_id("df1ff476b83a4a3eaf11b1eac2e5ac56")
    for bad in ("DF1FF476B83A4A3EAF11B1EAC2E5AC56", "df1ff476-b83a-4a3e-af11-b1eac2e5ac56", "x" * 32, "ab", ""):
        assert not is_operation_id(bad)


def test_last_update_is_never_before_creation():
    """The durable API gives whole seconds; an export done within its first second must not look time-travelled."""
    status = {**durable("Completed"), "lastUpdatedTime": "2024-01-01T00:00:00Z"}
    view = operation_view(status, "v1")
    assert view["lastUpdatedTime"] == view["createdTime"] == "2024-01-01T00:00:00.000001Z"


def test_a_failed_batch_reads_running_until_its_sibling_batches_end_then_failed_with_the_first_reason():
    """The Durable extension keeps a failing orchestration Running until every batch it started has ended
    (tests/devhost/test_durable_semantics.py); meanwhile the operation says running, with no errors yet."""
    custom = {**CHECKPOINT, "error": "the destination refused the write (AuthorizationFailure)"}
    while_siblings_copy = operation_view(durable("Running", custom=custom), "v1")
    assert while_siblings_copy["status"] == "running" and "errors" not in while_siblings_copy
    later = ("Orchestrator function 'export_orchestrator' failed: Activity function 'export_copy_batch' failed: "
             "CopyFailed: a later batch's reason")
    ended = operation_view(durable("Failed", custom=custom, output=later), "v1")
    assert ended["errors"] == ["the destination refused the write (AuthorizationFailure)"]
