"""Per-segment models: one model, gate and champion per value of a column.

With `segments` in model.yaml, every asset of the train graph is partitioned by segment:
a run trains one segment on its own rows, and the gate, the promotion and the rollout are
that segment's alone, so a segment whose candidate fails keeps its champion while the others
move on. Segments are Dagster partitions (orchestration/partitions.py; the Dagster instance keeps
the ones discovered so far, stores/instance.py): the UI shows each one's status, and a
backfill over several is one run per segment, each failing or succeeding on its own.

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

from typing import TYPE_CHECKING, Any

from modelfactory.errors import ProjectError
from modelfactory.project.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd


__all__ = [
    "SEPARATOR",
    "cli_args",
    "rows_of",
    "segment_model",
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
