"""Batch scoring by day: `<model>/predictions` partitioned per day (and segment), backfilled
over a date range from the CLI, each day's rows scored on their own; on real Dagster,
MLflow and DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance, MultiPartitionKey, build_schedule_context

from modelfactory.assets import build_definitions
from modelfactory.cli import main
from modelfactory.errors import SpecError
from modelfactory.project import load_project
from modelfactory.resources import local_home
from modelfactory.runs import seed_data, train
from modelfactory.spec import load_spec

MODEL = "demand_forecast"
PREDICTIONS = AssetKey([MODEL, "predictions"])
DAYS = ["2026-04-01", "2026-04-02", "2026-04-03"]


def daily(copy_example, segments: list[str] | None = None):
    def edit(spec: dict) -> None:
        spec["predictions"] = {"daily_from": "2026-01-01"}
        if segments:
            spec["segments"] = {"by": "marketplace", "values": segments}

    root = copy_example(MODEL, edit=edit, segments=bool(segments))
    project = load_project(root)
    seed_data(project)
    instance = DagsterInstance.get()
    for segment in segments or [None]:
        assert train(project, instance=instance, segment=segment).promoted
    return project


def stored_rows_by_day() -> dict[str, int]:
    with duckdb.connect(str(local_home().warehouse(MODEL)), read_only=True) as con:
        rows = con.execute(
            f"SELECT strftime(date, '%Y-%m-%d'), count(*) FROM {MODEL}.predictions GROUP BY 1"
        ).fetchall()
    return dict(rows)


def test_a_backfill_over_a_date_range_scores_one_partition_per_day(copy_example) -> None:
    daily(copy_example)
    result = CliRunner().invoke(main, ["predict", MODEL, "--from", DAYS[0], "--to", DAYS[-1]])
    assert result.exit_code == 0, result.output
    assert "[3/3] 2026-04-03: 60 rows scored by v1" in result.output  # 20 products x 3 markets
    instance = DagsterInstance.get()
    assert instance.get_materialized_partitions(PREDICTIONS) == set(DAYS)
    assert stored_rows_by_day() == dict.fromkeys(DAYS, 60)  # each day replaced only its rows

    again = CliRunner().invoke(main, ["predict", MODEL, "--from", DAYS[1]])  # one day, again
    assert again.exit_code == 0, again.output
    assert stored_rows_by_day() == dict.fromkeys(DAYS, 60)  # replaced, not doubled

    empty = CliRunner().invoke(main, ["predict", MODEL, "--from", "2026-06-01"])
    assert empty.exit_code == 0 and "0 rows scored by v1" in empty.output  # no sales that day


def test_segmented_daily_predictions_are_days_by_segments(copy_example) -> None:
    project = daily(copy_example, segments=["uk", "de"])
    result = CliRunner().invoke(
        main, ["predict", MODEL, "--from", DAYS[0], "--to", DAYS[1], "--segment", "uk"]
    )
    assert result.exit_code == 0, result.output
    assert "[2/2] 2026-04-02 uk: 20 rows scored by v1" in result.output
    materialized = DagsterInstance.get().get_materialized_partitions(PREDICTIONS)
    assert materialized == {MultiPartitionKey({"date": d, "segment": "uk"}) for d in DAYS[:2]}

    # The predict schedule scores the tick's own day, for every segment.
    defs = build_definitions(project)
    schedule = defs.resolve_schedule_def(f"{MODEL}_predict_schedule")
    tick = datetime(2026, 4, 2, 5, 0, tzinfo=UTC)
    with build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == [
        MultiPartitionKey({"date": "2026-04-02", "segment": s}) for s in ("uk", "de")
    ]
    midnight = datetime(2026, 4, 3, 0, 0, tzinfo=UTC)  # the first tick of a day finishes the last
    with build_schedule_context(
        scheduled_execution_time=midnight, repository_def=defs.get_repository_def()
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == [
        MultiPartitionKey({"date": d, "segment": s})
        for d in ("2026-04-02", "2026-04-03")
        for s in ("uk", "de")
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2025-12-31"], "days must run from 2026-01-01"),
        (["--from", "2026-04-03", "--to", "2026-04-01"], "first to last"),
        (["--from", "April"], "--from/--to take YYYY-MM-DD dates"),
    ],
)
def test_a_bad_date_range_is_refused_before_any_run(copy_example, args, message) -> None:
    copy_example(MODEL, edit=lambda spec: spec.update(predictions={"daily_from": "2026-01-01"}))
    result = CliRunner().invoke(main, ["predict", MODEL, *args])
    assert result.exit_code == 2 and message in result.output


def test_daily_predictions_need_a_time_column(copy_example) -> None:
    def edit(spec: dict) -> None:
        spec["predictions"] = {"daily_from": "2026-01-01"}
        spec["split"] = {"test_size": 0.2}

    root = copy_example(MODEL, edit=edit)
    with pytest.raises(SpecError, match=r"predictions\.daily_from needs split\.by"):
        load_spec(root / "model.yaml")
