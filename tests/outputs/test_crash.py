"""The metadata table after SIGKILLs of the host mid-export: exactly one row per exported file.

Each batch stages its rows as one block named by its place in the export, so a batch run again after
a kill replaces its block; the table is committed once, at the end (shared/outputs/metadata.py).
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pandas as pd

from testkit.crashes import kill_at
from testkit.exporting import export_body, export_host, finished, new_container, start, view
from testkit.host import wait_for
from testkit.seed import open_store, put_study

INSTANCES = 300
KILLS = (("copy", 40), ("copy", 150))


def test_a_killed_export_has_one_metadata_row_per_exported_file(tmp_path: Path, storage_connection_string: str
                                                                 ) -> None:
    conn = storage_connection_string
    store_container = f"store-{uuid.uuid4().hex[:10]}"
    study, stored = put_study(open_store(conn, store_container), INSTANCES, series_count=4, size=32)
    destination = new_container(conn)
    host = export_host(tmp_path / "hub", conn, store_container, Export__BatchSize="10",
                       Export__MaxParallelBatches="3").start()
    try:
        operation = start(host, export_body([study], destination, conn)
                          | {"metadata": {"formats": ["jsonl", "parquet"], "attributes": ["PatientID"]}})
        for point, progress in KILLS:
            wait_for(lambda: view(operation["href"])["results"]["exported"] >= progress,  # noqa: B023
                     timeout=120, message=f"{progress} files exported")
            kill_at(host, operation["id"], point)
            host.start()
        done = finished(operation["href"], timeout=300)
    finally:
        host.stop()

    assert (done["status"], done["results"]["exported"]) == ("completed", INSTANCES)
    prefix = f"{operation['id']}/"
    rows = [json.loads(line) for line in destination.download_blob(f"{prefix}metadata.jsonl").readall().splitlines()]
    assert sorted(r["path"] for r in rows) == sorted(f"results/{name}" for name in stored)
    table = pd.read_parquet(io.BytesIO(destination.download_blob(f"{prefix}metadata.parquet").readall()))
    assert len(table) == INSTANCES and table["path"].is_unique
