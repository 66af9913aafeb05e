"""Sensors of one model: the canary that moves a rollout on or rolls it back.

Sensors start running (`default_status=RUNNING`): a canary that nobody switched on would
leave a new champion at 5% forever. The work is in modelfactory.serving.canary; here it is
scheduled, and each change is reported on `<model>/endpoint` (and on `<model>/champion`
for a rollback), so the UI's event history tells the rollout's story.
"""

from __future__ import annotations

from dagster import (
    AssetKey,
    AssetObservation,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from modelfactory.notify import Notifier
from modelfactory.project import ModelProject
from modelfactory.registry import ModelRegistry
from modelfactory.serving.rollouts import RolloutStore

__all__ = ["build_sensors", "canary_sensor_name"]


def canary_sensor_name(model: str) -> str:
    return f"{model}_canary"


def build_sensors(project: ModelProject) -> list[SensorDefinition]:
    return [_canary_sensor(project)]


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
