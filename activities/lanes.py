"""The activity of an export run as lanes: the study bounds of a whole store's lanes (shared/export/steps.py)."""

from __future__ import annotations

import azure.durable_functions as df

from orchestrations.lanes import SPLIT
from shared.export import steps as export_steps

bp = df.Blueprint()


@bp.activity_trigger(input_name="work", activity=SPLIT)
def export_split_lanes(work: dict) -> list[str]:
    return export_steps.split_step(int(work["lanes"]))
