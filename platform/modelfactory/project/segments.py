"""Per-segment models: one model, gate and champion per value of a column.

With `segments` in model.yaml, every asset of the train graph is partitioned by segment:
a run trains one segment on its own rows, and the gate, the promotion and the rollout are
that segment's alone, so a segment whose candidate fails keeps its champion while the others
move on. Segments are Dagster partitions: the UI shows each one's status, and a backfill
over several is one run per segment, each failing or succeeding on its own.

Each segment is its own registered model in MLflow, `<model>.<segment>` (for instance
`demand_forecast.uk`), rather than one registered model with an alias per segment:

- versions count per segment, so "uk v3" means uk's third candidate, and MLflow's UI shows
  one segment's versions and metrics on their own page;
- every registry operation (champion, history, promote, rollback) works on a segment as it
  works on a model, and the alias keeps its one meaning, `champion`;
- aliases such as `champion_uk` would multiply with the segments and mix every segment's
  versions in one list, where a rollback must pick the right one by hand.

The rollout table and the alerts use the same name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from modelfactory.errors import ProjectError
from modelfactory.project.spec import SEGMENT_PATTERN, ModelSpec

if TYPE_CHECKING:
    import pandas as pd
    from dagster import DagsterInstance, PartitionsDefinition

    from modelfactory.project.loader import ModelProject

__all__ = [
    "SEPARATOR",
    "cli_args",
    "discover_segments",
    "each_segment",
    "partitions_def",
    "rows_of",
    "segment_model",
    "segment_partitions_name",
    "segments_of",
    "split_unit",
    "unit_of",
]

SEPARATOR = "."  # MLflow names may hold it; model names (identifiers) never do


def segment_model(model: str, segment: str | None) -> str:
    """The name a segment goes by in the registry and the rollout table."""
    return f"{model}{SEPARATOR}{segment}" if segment else model


def split_unit(unit: str) -> tuple[str, str | None]:
    """`demand_forecast.uk` -> (`demand_forecast`, `uk`); a model alone -> (model, None)."""
    model, _, segment = unit.partition(SEPARATOR)
    return model, segment or None


def unit_of(context: Any) -> str:
    """Whom an asset's run is about in the registry and the rollout table: the model (the
    asset key's first part), or the segment its partition is (`<model>.<segment>`)."""
    model = context.asset_key.path[0]
    return segment_model(model, context.partition_key if context.has_partition_key else None)


def cli_args(unit: str) -> str:
    """How the CLI names a model or one of its segments: `demand_forecast --segment uk`."""
    model, segment = split_unit(unit)
    return f"{model} --segment {segment}" if segment else model


def segment_partitions_name(model: str) -> str:
    """The dynamic partitions of a model whose segments are discovered."""
    return f"{model}_segments"


def partitions_def(spec: ModelSpec) -> PartitionsDefinition | None:
    """Static partitions for listed segments, dynamic ones for discovered; None unsegmented."""
    from dagster import DynamicPartitionsDefinition, StaticPartitionsDefinition

    if spec.segments is None:
        return None
    if spec.segments.discovered:
        return DynamicPartitionsDefinition(name=segment_partitions_name(spec.name))
    return StaticPartitionsDefinition(list(spec.segments.values))


def segments_of(spec: ModelSpec, instance: DagsterInstance | None = None) -> list[str]:
    """The segments a model has now: listed in its spec, or discovered so far (needs the
    Dagster instance that keeps them)."""
    if spec.segments is None:
        return []
    if not spec.segments.discovered:
        return list(spec.segments.values)
    if instance is None:
        raise ValueError("discovered segments are kept by the Dagster instance; pass it")
    return sorted(instance.get_dynamic_partitions(segment_partitions_name(spec.name)))


def each_segment(spec: ModelSpec, instance: DagsterInstance | None = None) -> list[str | None]:
    """What a sensor, schedule or command goes through: [None] for an unsegmented model (the
    model as a whole), else its segments, which may be none yet when they are discovered."""
    if spec.segments is None:
        return [None]
    return list(segments_of(spec, instance if spec.segments.discovered else None))


def rows_of(frame: pd.DataFrame, spec: ModelSpec, segment: str, what: str) -> pd.DataFrame:
    """`frame`'s rows of one segment; a clear error when the column or the rows are missing."""
    by = spec.segments.by if spec.segments else None
    if by is None:
        return frame
    if by not in frame.columns:
        raise ProjectError(f"{what}: has no column {by!r}, which model.yaml segments.by names")
    rows = frame[frame[by].astype(str) == segment]
    if rows.empty:
        found = sorted(frame[by].astype(str).unique())[:10]
        raise ProjectError(
            f"{what}: no rows of segment {segment!r} in column {by!r} (it holds {found})"
        )
    return rows.reset_index(drop=True)


def discover_segments(project: ModelProject) -> list[str]:
    """The segments in the project's raw data now: the values of `segments.by`."""
    from modelfactory.stores.home import local_home

    by = project.spec.segments.by if project.spec.segments else None
    if by is None:
        return []
    what = f"{project.shown('features.py')}: load_raw"
    frame: Any = project.function("features", "load_raw")(local_home().data(project.name))
    if by not in frame.columns:
        raise ProjectError(f"{what}: has no column {by!r}, which model.yaml segments.by names")
    values = sorted(frame[by].dropna().astype(str).unique())
    bad = [v for v in values if not re.match(SEGMENT_PATTERN, v)]
    if bad:
        raise ProjectError(
            f"{what}: values of {by!r} cannot name a segment (1-40 lower-case letters, "
            f"digits or '_'; lower-case them in load_raw): {bad[:10]}"
        )
    return values
