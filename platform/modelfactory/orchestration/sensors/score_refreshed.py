"""`modelfactory_score_refreshed`: score what a segment's refresh wrote."""

from __future__ import annotations

from datetime import date
from typing import Any

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    SensorDefinition,
    SkipReason,
    run_status_sensor,
)

from modelfactory.orchestration.batch import run_partition_key
from modelfactory.orchestration.schedules import SCORE_DAYS_TAG
from modelfactory.orchestration.sensors.names import SCORE_REFRESHED_SENSOR
from modelfactory.orchestration.sensors.tick import FleetModel, all_jobs, listed


def build_score_refreshed_sensor(models: list[FleetModel]) -> SensorDefinition:
    """Scores the days a successful refresh run of a segment was scheduled for, with the
    features it just wrote: the second half of a segmented model's daily predict tick."""
    by_job = {m.job("refresh").name: m for m in models}

    @run_status_sensor(
        name=SCORE_REFRESHED_SENSOR,
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=all_jobs(models, "refresh"),
        request_jobs=all_jobs(models, "predict"),
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "When a scheduled refresh of one of a model's segments succeeds, scores that "
            "segment's days it was scheduled for. Watches " + listed(models)
        ),
    )
    def score_refreshed(context: RunStatusSensorContext) -> SkipReason | list[RunRequest]:
        run = context.dagster_run
        model = by_job.get(run.job_name)
        if model is None:
            return SkipReason(f"run {run.run_id[:8]} of {run.job_name} is no model's refresh")
        return _score_requests(model, run)

    return score_refreshed


def _score_requests(model: FleetModel, run: Any) -> SkipReason | list[RunRequest]:
    """The predictions runs (day x segment) a finished refresh run asks for, once each."""

    days = [day for day in run.tags.get(SCORE_DAYS_TAG, "").split(",") if day]
    segment = run.tags.get("dagster/partition")
    if not days or segment is None:
        return SkipReason(f"run {run.run_id[:8]} was not a scheduled refresh of one segment")
    return [
        RunRequest(
            job_name=model.job("predict").name,
            run_key=f"{run.run_id}:{day}",
            partition_key=run_partition_key(model.project.spec, date.fromisoformat(day), segment),
            tags={"modelfactory/model": model.name, "modelfactory/trigger": "refresh"},
        )
        for day in days
    ]
