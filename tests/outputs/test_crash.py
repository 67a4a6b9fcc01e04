"""The metadata table after SIGKILLs of the host mid-export: exactly one row per exported file.

Each batch stages its rows as one block named by its place in the export, so a batch run again after
a kill replaces its block; the table is committed once, at the end (shared/outputs/metadata.py).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from testkit.crashes import killed_export

INSTANCES = 300
KILLS = (("copy", 40), ("copy", 150))


def test_a_killed_export_has_one_metadata_row_per_exported_file(tmp_path: Path, storage_connection_string: str
                                                                 ) -> None:
    killed = killed_export(tmp_path, storage_connection_string, INSTANCES, 4, KILLS,
                           {"metadata": {"formats": ["jsonl", "parquet"], "attributes": ["PatientID"]}})
    operation, done, destination, stored = killed.operation, killed.done, killed.destination, killed.stored

    assert (done["status"], done["results"]["exported"]) == ("completed", INSTANCES)
    prefix = f"{operation['id']}/"
    rows = [json.loads(line) for line in destination.download_blob(f"{prefix}metadata.jsonl").readall().splitlines()]
    assert sorted(r["path"] for r in rows) == sorted(f"results/{name}" for name in stored)
    table = pd.read_parquet(io.BytesIO(destination.download_blob(f"{prefix}metadata.parquet").readall()))
    assert len(table) == INSTANCES and table["path"].is_unique
