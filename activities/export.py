"""The export's activities: expand the next identifiers, copy one batch, commit the manifest (shared/export/steps.py).

Each takes its work item as the Durable extension hands it to Python: the orchestrator's JSON, decoded
into a dict by azure.functions' activity trigger converter (devhost sends the same).
"""

from __future__ import annotations

import azure.durable_functions as df

from orchestrations.export import COMMIT, COPY, EXPAND
from shared.export import steps as export_steps
from shared.export.work import CommitWork, CopyWork, ExpandWork

bp = df.Blueprint()


@bp.activity_trigger(input_name="work", activity=EXPAND)
def export_expand(work: dict) -> dict:
    return export_steps.expand_step(ExpandWork.from_json(work)).to_json()


@bp.activity_trigger(input_name="work", activity=COPY)
def export_copy_batch(work: dict) -> dict:
    return export_steps.copy_step(CopyWork.from_json(work)).to_json()


@bp.activity_trigger(input_name="work", activity=COMMIT)
def export_commit_manifest(work: dict) -> dict:
    return export_steps.commit_step(CommitWork.from_json(work)).to_json()
