"""The structured log lines operators query (shared/export/events.py), read from the host's own log output:
one `export.started`, one `export.batch` per batch attempt, one `export.ended`, all naming the operation."""

from __future__ import annotations

import json

import pytest

from testkit.exporting import export_body, finished, host_fixtures, start
from testkit.host import wait_for
from testkit.seed import put_study, uid

hosts, store, destination = host_fixtures("event-hosts")


def events(log: str, operation_id: str) -> list[tuple[str, dict]]:
    """(event, fields) of every structured line about `operation_id`, in order."""
    found = []
    for line in log.splitlines():
        for event in ("export.started ", "export.batch ", "export.ended "):
            if event in line:
                fields = json.loads(line[line.index(event) + len(event):])
                if fields["operationId"] == operation_id:
                    found.append((event.strip(), fields))
    return found


def test_an_export_logs_its_start_each_batch_and_its_end_with_counts_and_durations(hosts, store, destination,
                                                                                    storage_connection_string):
    host = hosts()  # Export__BatchSize 5 (testkit/exporting.py)
    study, stored = put_study(store, 12)
    operation = start(host, export_body([study, uid()], destination, storage_connection_string))
    status = finished(operation["href"])
    assert status["status"] == "completed"

    logged = wait_for(lambda: (e := events(host.log(), operation["id"])) and e[-1][0] == "export.ended" and e,
                      timeout=30, interval=0.1, message="the export.ended line")
    kinds = [kind for kind, _ in logged]
    assert kinds[0] == "export.started" and kinds[-1] == "export.ended" and kinds.count("export.started") == 1
    started, ended = logged[0][1], logged[-1][1]
    assert started["identifiers"] == 2 and started["deidentified"] is False

    batches = [fields for kind, fields in logged if kind == "export.batch"]
    assert len(batches) == 3 and {b["outcome"] for b in batches} == {"copied"}  # 12 instances in batches of 5
    assert sorted(b["instances"] for b in batches) == [2, 5, 5]
    assert sum(b["exported"] for b in batches) == len(stored) == status["results"]["exported"]
    assert all(isinstance(b["durationMs"], int) and b["durationMs"] >= 0 for b in batches)

    assert ended["status"] == "completed" and ended["exported"] == len(stored)
    assert ended["skipped"] == status["results"]["skipped"] == 1  # the identifier that matches nothing
    assert ended["durationMs"] >= max(b["durationMs"] for b in batches)
    assert "AccountKey" not in json.dumps(logged)  # the destination's key never reaches a log line


def test_a_failed_batch_attempt_is_logged_with_its_reason_scrubbed_and_still_raises(caplog):
    from shared.export import events as export_events

    with (caplog.at_level("INFO", logger="export.events"), pytest.raises(RuntimeError),
          export_events.timed_batch(operationId="op", generation=1, batch=0, instances=3)):
        raise RuntimeError("403 on https://acct.blob.core.windows.net/c/x?sv=1&sig=SECRET")
    (record,) = caplog.records
    fields = json.loads(record.getMessage().removeprefix("export.batch "))
    assert record.levelname == "WARNING" and fields["outcome"] == "failed" and fields["operationId"] == "op"
    assert "403" in fields["error"] and "SECRET" not in record.getMessage()
