"""The export's activities: expand the next identifiers, copy one batch, commit the manifest (shared/export/steps.py)."""

from __future__ import annotations

import json

import azure.durable_functions as df

from orchestrations.export import COMMIT, COPY, EXPAND
from shared.export import steps as export_steps

bp = df.Blueprint()


def _work(payload: str | dict) -> dict:
    return json.loads(payload) if isinstance(payload, str) else payload


@bp.activity_trigger(input_name="work", activity=EXPAND)
def export_expand(work: str) -> dict:
    return export_steps.expand_step(_work(work))


@bp.activity_trigger(input_name="work", activity=COPY)
def export_copy_batch(work: str) -> dict:
    return export_steps.copy_step(_work(work))


@bp.activity_trigger(input_name="work", activity=COMMIT)
def export_commit_manifest(work: str) -> dict:
    return export_steps.commit_step(_work(work))
