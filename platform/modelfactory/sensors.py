"""Sensors of one model: the canary that moves a rollout on or rolls it back, and the drift
watch that retrains the model when live inputs move away from its training data.

Sensors start running (`default_status=RUNNING`): a canary that nobody switched on would
leave a new champion at 5% forever. The work is in modelfactory.serving.canary; here it is
scheduled, and each change is reported on `<model>/endpoint` (and on `<model>/champion`
for a rollback), so the UI's event history tells the rollout's story.
"""

from __future__ import annotations

from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from modelfactory.notify import Notifier
from modelfactory.project import ModelProject
from modelfactory.registry import ModelRegistry
from modelfactory.serving.rollouts import RolloutStore

__all__ = ["build_sensors", "canary_sensor_name", "drift_sensor_name"]


def canary_sensor_name(model: str) -> str:
    return f"{model}_canary"


def drift_sensor_name(model: str) -> str:
    return f"{model}_drift"


def build_sensors(project: ModelProject, train_job: Any, report_job: Any) -> list[SensorDefinition]:
    """The model's sensors; the jobs are the ones a drift retrain and its report run."""
    return [_canary_sensor(project), _drift_sensor(project, train_job, report_job)]


def _canary_sensor(project: ModelProject) -> SensorDefinition:
    name = project.name
    canary = project.spec.serving.canary

    @sensor(
        name=canary_sensor_name(name),
        minimum_interval_seconds=canary.check_every_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=[AssetKey([name, "endpoint"])],
        description=(
            f"Moves {name}'s rollout through {canary.steps}% once the new version has answered "
            f"{canary.min_requests} requests at a step, and rolls back when its error rate "
            f"exceeds {canary.max_error_rate:.1%} or its p95 latency "
            f"{canary.max_latency_ratio:g}x the stable version's."
        ),
    )
    def canary_sensor(
        context: SensorEvaluationContext,
        model_registry: ModelRegistry,
        rollouts: RolloutStore,
        notifier: Notifier,
    ) -> SkipReason | None:
        from modelfactory.resources import local_home
        from modelfactory.runs import record_alias_move
        from modelfactory.serving.canary import step
        from modelfactory.serving.capture import WarehouseBusy

        rollout = rollouts.active(name)
        if rollout is None:
            return SkipReason("no rollout in progress")
        try:
            outcome = step(
                rollout,
                canary,
                warehouse=local_home().warehouse(name),
                store=rollouts,
                registry=model_registry,
                notifier=notifier,
            )
        except WarehouseBusy:
            return SkipReason(f"{name}'s warehouse is busy; judging on the next tick")
        if outcome.rollout == rollout:
            return SkipReason(f"{rollout.describe()}: {outcome.verdict.reason}")
        context.instance.report_runless_asset_event(
            AssetObservation(
                asset_key=AssetKey([name, "endpoint"]),
                description=f"{outcome.verdict.action}: {outcome.verdict.reason}",
                metadata=outcome.rollout.as_metadata(),
            )
        )
        if outcome.move is not None:
            record_alias_move(outcome.move, context.instance)
        context.log.info(f"{name}: {outcome.rollout.describe()} ({outcome.verdict.reason})")
        return SkipReason(f"{outcome.rollout.describe()}: {outcome.verdict.reason}")

    return canary_sensor


def _drift_sensor(project: ModelProject, train_job: Any, report_job: Any) -> SensorDefinition:
    name = project.name
    drift = project.spec.drift

    @sensor(
        name=drift_sensor_name(name),
        jobs=[train_job, report_job],
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Every {drift.window} requests the endpoint answered, compares their inputs with "
            f"the champion's training data ({drift.method}, threshold {drift.threshold}); when "
            f"more than {drift.max_share:.0%} of the columns drifted, retrains {name}."
        ),
    )
    def drift_sensor(
        context: SensorEvaluationContext, model_registry: ModelRegistry, notifier: Notifier
    ) -> SkipReason | list[RunRequest]:
        from datetime import datetime

        from modelfactory.monitoring import compare
        from modelfactory.notify import Alert
        from modelfactory.resources import local_home
        from modelfactory.serving.capture import WarehouseBusy, read_window

        # The window first: most ticks end here, before any registry or artifact I/O.
        after = datetime.fromisoformat(context.cursor) if context.cursor else None
        try:
            window, first, last = read_window(
                local_home().warehouse(name), name, after=after, limit=drift.window
            )
        except WarehouseBusy:
            return SkipReason(f"{name}'s warehouse is busy; reading on the next tick")
        if len(window) < drift.window:
            return SkipReason(f"{len(window)}/{drift.window} new rows since the last check")
        champion = model_registry.champion(name)
        if champion is None:
            return SkipReason(f"{name} has no champion to compare live data with")
        reference = model_registry.reference_profile(name, champion.version)
        if reference is None:
            return SkipReason(f"champion v{champion.version} was logged without a reference")

        result = compare(reference, window, drift)
        context.update_cursor(last.isoformat())  # judged: never read again
        context.instance.report_runless_asset_event(
            AssetObservation(  # every judged window, drifted or not: the UI plots the share
                asset_key=AssetKey([name, "drift_report"]),
                description=f"drift check: {result.describe()}",
                metadata={
                    "drift_share": result.share,
                    "drifted_columns": ", ".join(result.drifted_columns) or "none",
                    "window_rows": result.rows,
                    "window": f"{first.isoformat()} .. {last.isoformat()}",
                    "champion_version": champion.version,
                },
            )
        )
        if not result.drifted:
            return SkipReason(result.describe())
        notifier.send(
            Alert(
                model=name,
                event="drift_retrain",
                text=f"retraining: {result.describe()}",
                severity="warning",
            )
        )
        window_key = f"drift:{name}:{first.isoformat()}:{last.isoformat()}"
        tags = {
            "modelfactory/model": name,
            "modelfactory/trigger": "drift",
            "modelfactory/drift_share": f"{result.share:.3f}",
            "modelfactory/drifted_columns": ",".join(result.drifted_columns),
            "modelfactory/champion": champion.version,
        }
        # One retrain (and one report) per judged window, however often it is evaluated.
        return [
            RunRequest(job_name=train_job.name, run_key=window_key, tags=tags),
            RunRequest(job_name=report_job.name, run_key=f"{window_key}:report", tags=tags),
        ]

    return drift_sensor
