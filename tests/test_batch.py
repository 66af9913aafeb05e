"""Batch scoring by day: `<model>/predictions` partitioned per day (and segment), backfilled
over a date range from the CLI, each day's rows scored on their own; on real Dagster,
MLflow and DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest
from click.testing import CliRunner
from dagster import (
    AssetKey,
    DagsterInstance,
    MultiPartitionKey,
    build_run_status_sensor_context,
    build_schedule_context,
)

from modelfactory.cli import main
from modelfactory.errors import SpecError
from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.runs import seed_data, train
from modelfactory.orchestration.sensors import SCORE_REFRESHED_SENSOR
from modelfactory.project.loader import load_project
from modelfactory.project.spec import load_spec
from modelfactory.stores.home import local_home

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

    # The predict schedule refreshes each segment's features, then scores the tick's day.
    defs = build_definitions(project)
    schedule = defs.resolve_schedule_def(f"{MODEL}_predict_schedule")
    tick = datetime(2026, 4, 2, 5, 0, tzinfo=UTC)
    with build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert schedule.job_name == f"{MODEL}_refresh"
    assert [r.partition_key for r in requests] == ["uk", "de"]
    assert {r.tags["modelfactory/score_days"] for r in requests} == {"2026-04-02"}
    midnight = datetime(2026, 4, 3, 0, 0, tzinfo=UTC)  # the first tick of a day finishes the last
    with build_schedule_context(
        scheduled_execution_time=midnight, repository_def=defs.get_repository_def()
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert {r.tags["modelfactory/score_days"] for r in requests} == {"2026-04-02,2026-04-03"}


def test_a_segmented_model_scores_new_days_with_freshly_refreshed_features(
    copy_example,
) -> None:
    """Its features are segment-partitioned and its predictions day-by-segment, which one
    Dagster job cannot hold: a refresh run per segment, then the days it was for."""
    project = load_project(copy_example(MODEL))  # as shipped: segments and daily predictions
    seed_data(project)
    instance = DagsterInstance.get()
    assert train(project, instance=instance, segment="uk").promoted
    new_days = ["2026-05-01", "2026-05-02"]  # sales of two days after the training data
    project.module("simulate").new_batch(
        local_home().data(MODEL), "sales-may", n_days=2, start=new_days[0], seed=5
    )
    stale = CliRunner().invoke(main, ["predict", MODEL, "--from", new_days[1], "--segment", "uk"])
    assert stale.exit_code == 0 and "0 rows scored by v1" in stale.output  # not in features

    defs = build_definitions(project)
    tick = datetime(2026, 5, 2, 0, 0, tzinfo=UTC)  # the first tick of May 2nd
    schedule = defs.resolve_schedule_def(f"{MODEL}_predict_schedule")
    with build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    uk = next(r for r in requests if r.partition_key == "uk")
    refresh = defs.resolve_job_def(schedule.job_name).execute_in_process(
        instance=instance, partition_key="uk", tags=uk.tags
    )
    assert refresh.success

    sensor = defs.resolve_sensor_def(SCORE_REFRESHED_SENSOR)
    context = build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=refresh.get_run_success_event(),
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(refresh.run_id),
    )
    scores = sensor(context)
    assert [r.partition_key for r in scores] == [
        MultiPartitionKey({"date": day, "segment": "uk"}) for day in new_days
    ]
    predict = defs.resolve_job_def(f"{MODEL}_predict")
    for request in scores:
        result = predict.execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=request.tags
        )
        assert result.success
    assert stored_rows_by_day() == dict.fromkeys(new_days, 20)  # uk's 20 products a day


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
