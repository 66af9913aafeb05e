"""Pins the graph each example generates: a rename or a lost check shows up as a reviewable diff.

After an intended change, refresh with `MODELFACTORY_UPDATE_SNAPSHOTS=1 make test`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelfactory.orchestration.definitions import build_definitions
from modelfactory.project.loader import load_project

REPO = Path(__file__).resolve().parents[1]
SNAPSHOTS = Path(__file__).parent / "snapshots"
EXAMPLES = ["breast_cancer", "demand_forecast"]  # the examples shipped with the platform


def graph(model: str) -> dict:
    defs = build_definitions(load_project(REPO / "model_projects" / model))
    assets = {}
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda s: s.key.to_user_string()):
        checks = defs.resolve_assets_def(spec.key).check_specs
        assets[spec.key.to_user_string()] = {
            "group": spec.group_name,
            "partitions": partitions(spec.partitions_def),
            "owners": list(spec.owners),
            "kinds": sorted(spec.kinds),
            "deps": sorted(d.asset_key.to_user_string() for d in spec.deps),
            "checks": {c.name: {"blocking": c.blocking} for c in checks if c.asset_key == spec.key},
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def partitions(definition: object) -> object:
    """What the UI shows an asset partitioned by: segments, days, or both."""
    from dagster import (
        DynamicPartitionsDefinition,
        MultiPartitionsDefinition,
        StaticPartitionsDefinition,
        TimeWindowPartitionsDefinition,
    )

    if definition is None:
        return None
    if isinstance(definition, MultiPartitionsDefinition):
        return {d.name: partitions(d.partitions_def) for d in definition.partitions_defs}
    if isinstance(definition, StaticPartitionsDefinition):
        return definition.get_partition_keys()
    if isinstance(definition, DynamicPartitionsDefinition):
        return f"dynamic: {definition.name}"
    if isinstance(definition, TimeWindowPartitionsDefinition):
        return f"{definition.cron_schedule} from {definition.start:%Y-%m-%d}"
    raise TypeError(f"no snapshot form for {type(definition).__name__}")


@pytest.mark.parametrize("model", EXAMPLES)
def test_generated_graph_matches_snapshot(model: str) -> None:
    current = graph(model)
    snapshot = SNAPSHOTS / f"{model}.json"
    if os.environ.get("MODELFACTORY_UPDATE_SNAPSHOTS"):
        snapshot.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert snapshot.exists(), (
        f"no snapshot {snapshot}; create it with MODELFACTORY_UPDATE_SNAPSHOTS=1"
    )
    assert current == json.loads(snapshot.read_text())
