"""Schedules of one model from its spec's `schedule` section, and the freshness they promise.

    schedule.retrain  ─► <model>_train    raw → … → champion → endpoint
    schedule.predict  ─► <model>_predict  raw → features → predictions
                         (segmented, by day: <model>_refresh raw → features, per segment;
                          its success scores the tick's days, see sensors.py)

Schedules start running (`default_status=RUNNING`): a cron line in model.yaml that needs
a click in the UI before it does anything would surprise everyone. Times are UTC.

Freshness follows from the same cron lines: an asset a schedule refreshes should never be
older than the longest gap between two ticks plus the model's maximum runtime. Past that
(a tick's run failed or never came) the UI warns; past twice the gap plus the runtime (the
next tick missed too) it fails.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter
from dagster import (
    DefaultScheduleStatus,
    FreshnessPolicy,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

from modelfactory.orchestration.batch import run_partition_key
from modelfactory.project.loader import ModelProject
from modelfactory.project.spec import ModelSpec
from modelfactory.stores.instance import each_segment

__all__ = [
    "SCORE_DAYS_TAG",
    "build_schedules",
    "freshness_policies",
    "longest_gap",
    "predict_schedule_name",
    "retrain_schedule_name",
]

SCORE_DAYS_TAG = "modelfactory/score_days"  # on a refresh run: the days to score after it

_GAP_SAMPLE = 60  # ticks looked at to find a cron's longest gap (weekday lists vary)


def retrain_schedule_name(model: str) -> str:
    return f"{model}_retrain_schedule"


def predict_schedule_name(model: str) -> str:
    return f"{model}_predict_schedule"


def build_schedules(
    project: ModelProject, train_job: Any, predict_job: Any, refresh_job: Any = None
) -> list[ScheduleDefinition]:
    """One schedule per cron line in the spec; none when the spec has no `schedule`.
    With a `refresh_job`, the predict schedule runs it, and the scoring follows each run."""
    name, schedule = project.name, project.spec.schedule
    built = []
    for cron, job, schedule_name, what in (
        (schedule.retrain, train_job, retrain_schedule_name(name), "Retrains"),
        (schedule.predict, refresh_job or predict_job, predict_schedule_name(name), "Batch-scores"),
    ):
        if cron is None:
            continue
        settings = {
            "name": schedule_name,
            "cron_schedule": cron,
            "job": job,
            "execution_timezone": "UTC",
            "default_status": DefaultScheduleStatus.RUNNING,
            "tags": {"modelfactory/model": name, "modelfactory/trigger": "schedule"},
            "description": f"{what} {name} on `{cron}` (UTC), from model.yaml schedule.",
        }
        daily = job is not train_job and project.spec.predictions is not None
        if project.spec.segments is None and not daily:
            built.append(ScheduleDefinition(**settings))
        else:
            refresh = job is refresh_job and refresh_job is not None
            built.append(_partitioned(project, settings, daily=daily, refresh=refresh))
    return built


def _partitioned(
    project: ModelProject, settings: dict[str, Any], daily: bool, refresh: bool = False
) -> ScheduleDefinition:
    """A schedule of a partitioned job: each tick runs every segment (one run each) and, for
    daily predictions, the tick's day, and the previous tick's day once more when that was
    another day, so the rows that came after its last tick are scored too.

    `refresh`: the job refreshes a segment's features; its run carries the days to score
    after it (SCORE_DAYS_TAG), since one job cannot hold both partitionings."""

    spec, cron = project.spec, settings["cron_schedule"]
    tags = settings.pop("tags")
    discovered = spec.segments is not None and spec.segments.discovered
    if spec.segments is not None:
        settings["description"] += " One run per segment."
    if daily:
        settings["description"] += (
            " Each tick refreshes each segment's features, then scores"
            if refresh
            else " Each tick scores"
        ) + " its day (UTC), and finishes the last."

    @schedule(**settings)
    def every_partition(context: ScheduleEvaluationContext) -> list[RunRequest]:
        tick = context.scheduled_execution_time.astimezone(UTC)
        days = sorted({_previous_tick(cron, tick).date(), tick.date()}) if daily else [None]
        segments = each_segment(spec, context.instance if discovered else None)
        if refresh:
            score = {SCORE_DAYS_TAG: ",".join(day.isoformat() for day in days)}
            return [
                RunRequest(
                    run_key=f"refresh-{segment}-{tick:%Y%m%dT%H%M}",
                    partition_key=segment,
                    tags=tags | score,
                )
                for segment in segments
            ]
        return [
            RunRequest(
                run_key=f"{day or 'all'}-{segment or 'all'}-{tick:%Y%m%dT%H%M}",
                partition_key=run_partition_key(spec, day, segment) if daily else segment,
                tags=tags,
            )
            for day in days
            for segment in segments
        ]

    return every_partition


def _previous_tick(cron: str, tick: datetime) -> datetime:
    return croniter(cron, tick).get_prev(datetime)


def longest_gap(cron: str) -> timedelta:
    """The longest time between two consecutive ticks of a cron expression."""
    ticks = croniter(cron, datetime(2026, 1, 1, tzinfo=UTC))
    times = [ticks.get_next(datetime) for _ in range(_GAP_SAMPLE)]
    return max(later - earlier for earlier, later in itertools.pairwise(times))


def freshness_policies(spec: ModelSpec) -> dict[str, FreshnessPolicy]:
    """The freshness policy of each scheduled step (`features`, `candidate`, `predictions`).

    `features` is refreshed by both schedules, so the more frequent one sets its policy.
    """
    runtime = timedelta(seconds=spec.resources.timeout_seconds)
    gaps: dict[str, list[timedelta]] = {}
    if spec.schedule.retrain:
        gap = longest_gap(spec.schedule.retrain)
        for step in ("features", "candidate"):
            gaps.setdefault(step, []).append(gap)
    if spec.schedule.predict:
        gap = longest_gap(spec.schedule.predict)
        for step in ("features", "predictions"):
            gaps.setdefault(step, []).append(gap)
    return {
        step: FreshnessPolicy.time_window(
            warn_window=min(found) + runtime, fail_window=2 * min(found) + runtime
        )
        for step, found in gaps.items()
    }
