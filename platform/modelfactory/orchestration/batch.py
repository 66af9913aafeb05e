"""Batch scoring by day: how `<model>/predictions` is partitioned and which rows a run scores.

With `predictions: {daily_from: ...}` in model.yaml the predictions asset has one partition
per day (per day and segment, for a segmented model: a multi-partition with dimensions
`date` and `segment`). A run scores the features rows of its day, by the time column
`split.by`, with the champion of the moment, and replaces that day's rows in the warehouse;
a day scored once keeps the version that scored it, which is what replay compares a
candidate with. `modelfactory predict --from --to` runs one day at a time; a backfill from
the UI (Materialize all included) is one run per segment over its days (the asset's
single-run backfill policy), each day of it scored the same way.

Without it, predictions score all of the latest features at once (per segment, if any).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
from dagster import (
    DailyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    PartitionKeyRange,
)

from modelfactory.orchestration.partitions import partitions_def as segment_partitions

if TYPE_CHECKING:
    from dagster import PartitionsDefinition

    from modelfactory.project.spec import ModelSpec
    from modelfactory.stores.inference_log import InferenceStore

__all__ = [
    "DATE",
    "SEGMENT",
    "predictions_partitions",
    "predictions_storage",
    "read_scored",
    "rows_between",
    "run_partition_key",
    "scored_partitions",
]

DATE, SEGMENT = "date", "segment"  # the dimensions of a segmented model's daily predictions


def predictions_partitions(spec: ModelSpec) -> PartitionsDefinition | None:
    """Days, days x segments, segments, or none."""
    segments = segment_partitions(spec)
    if spec.predictions is None:
        return segments
    days = DailyPartitionsDefinition(
        start_date=spec.predictions.daily_from.isoformat(),
        end_offset=1,  # today included
    )
    if segments is None:
        return days
    return MultiPartitionsDefinition({DATE: days, SEGMENT: segments})


def predictions_storage(spec: ModelSpec) -> dict[str, Any]:
    """The warehouse metadata saying which columns hold a partition's rows."""
    by_segment = spec.segments.by if spec.segments else None
    if spec.predictions is None:
        return {"partition_expr": by_segment} if by_segment else {}
    if by_segment is None:
        return {"partition_expr": spec.split.by}
    return {"partition_expr": {DATE: spec.split.by, SEGMENT: by_segment}}


def scored_partitions(
    context: Any, spec: ModelSpec
) -> tuple[tuple[date, date] | None, list[str | None]]:
    """The days (first, last) and the segments a predictions run scores: one partition, or
    the range a single-run backfill gives it (days x segments, as the warehouse replaces
    them). (None, [None]) where predictions are not partitioned so."""
    if not context.has_partition_key and not context.has_partition_key_range:
        return None, [None]
    if spec.predictions is None:  # by segment only
        return None, list(context.partition_keys)
    window = context.partition_time_window
    days = (window.start.date(), (window.end - timedelta(days=1)).date())
    if spec.segments is None:
        return days, [None]
    span = context.partition_key_range
    segments = predictions_partitions(spec).get_partitions_def_for_dimension(SEGMENT)
    inside = PartitionKeyRange(
        span.start.keys_by_dimension[SEGMENT], span.end.keys_by_dimension[SEGMENT]
    )
    return days, list(segments.get_partition_keys_in_range(inside))


def rows_between(features: pd.DataFrame, time_column: str, first: date, last: date) -> pd.DataFrame:
    """The rows whose time column falls on a day from `first` to `last` (UTC dates; times
    within a day count)."""
    times = pd.to_datetime(features[time_column])
    start = pd.Timestamp(datetime.combine(first, datetime.min.time()))
    if times.dt.tz is not None:
        start = start.tz_localize("UTC")
    end = start + timedelta(days=(last - first).days + 1)
    inside = (times >= start) & (times < end)
    return features[inside.to_numpy()].reset_index(drop=True)


def read_scored(
    store: InferenceStore, spec: ModelSpec, segment: str | None, since: datetime
) -> pd.DataFrame:
    """The stored batch scores (one segment's, if given) of rows timed `since` or later;
    empty before the first scoring run. `store` is the model's warehouse."""
    time_column = spec.split.by
    where, bound = [f"{time_column} >= ?"], [since]
    if segment is not None and spec.segments is not None:
        where.append(f"{spec.segments.by} = ?")
        bound.append(segment)
    with store.connect(wait=10.0) as con:
        if not store.has_table(con, "predictions"):
            return pd.DataFrame()
        cursor = con.execute(
            f"SELECT * FROM {store.table('predictions')} WHERE {' AND '.join(where)}", bound
        )
        return store.frame(cursor)


def run_partition_key(spec: ModelSpec, day: date | None, segment: str | None) -> Any:
    """The partition key of a predictions run for a day and/or a segment."""
    if spec.predictions is None:
        return segment
    if spec.segments is None:
        return day.isoformat() if day else None
    return MultiPartitionKey({DATE: day.isoformat(), SEGMENT: segment})  # type: ignore[union-attr]
