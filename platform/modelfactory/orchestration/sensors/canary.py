"""`modelfactory_canary`: move every active rollout a step on, or roll it back.

The judging rules are plain (modelfactory.lifecycle.canary); here they are scheduled, and
each verdict is recorded on the model's assets and in the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from modelfactory.lifecycle.canary import LiveRule, step
from modelfactory.orchestration.sensors.names import CANARY_SENSOR
from modelfactory.orchestration.sensors.tick import FleetModel, SensorCursor, Tick, listed
from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import split_unit
from modelfactory.stores.home import inference_store, label_folder
from modelfactory.stores.inference_log import WarehouseBusy
from modelfactory.stores.instance import record_alias_move
from modelfactory.stores.notify import Notifier
from modelfactory.stores.registry import ModelRegistry
from modelfactory.stores.rollouts import Rollout, RolloutStore


def build_canary_sensor(models: list[FleetModel]) -> SensorDefinition:
    by_name = {m.name: m for m in models}
    every = min(m.project.spec.serving.canary.check_every_seconds for m in models)

    @sensor(
        name=CANARY_SENSOR,
        minimum_interval_seconds=every,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=[
            AssetKey([m.name, step]) for m in models for step in ("endpoint", "model_card")
        ],
        description=(
            "Moves each model's rollout through its `serving.canary.steps` once the new "
            "version has answered `min_requests` requests at a step, and rolls back when its "
            "error rate, p95 latency (against the stable version's) or, once labels arrived, "
            "live metric crosses the model's limits; after a rollback it refreshes the model "
            "card. One read of the rollout table per tick; each model is judged every "
            "`check_every_seconds`. Judges " + listed(models)
        ),
    )
    def canary_sensor(
        context: SensorEvaluationContext,
        model_registry: ModelRegistry,
        rollouts: RolloutStore,
        notifier: Notifier,
    ) -> SkipReason | SensorResult:
        active = _active_rollouts(rollouts.all_active(), by_name)
        if not active:  # most ticks: one query, no label listing, no reads
            return SkipReason("no rollout in progress")
        tick = Tick(context, SensorCursor(context.cursor), notifier, "canary step", True)
        judged = [
            (rollout, _judge_due(tick, by_name[name], rollout, model_registry, rollouts))
            for name, found in active.items()
            for rollout in found
        ]
        units = {rollout.model for found in active.values() for rollout in found}
        tick.cursors.judged = {u: t for u, t in tick.cursors.judged.items() if u in units}
        tick.cursors.save(context)
        return _canary_result(context, judged)

    return canary_sensor


def _active_rollouts(
    active: Mapping[str, Rollout], models: Mapping[str, FleetModel]
) -> dict[str, list[Rollout]]:
    """The rollouts in progress of the location's models, by model: the model's own for an
    unsegmented one, its segments' for a segmented one (each judged on its own traffic)."""

    found: dict[str, list[Rollout]] = {}
    for unit, rollout in sorted(active.items()):
        name, segment = split_unit(unit)
        model = models.get(name)
        if model is not None and _is_unit_of(model.project, segment):
            found.setdefault(name, []).append(rollout)
    return found


def _is_unit_of(project: ModelProject, segment: str | None) -> bool:
    segments = project.spec.segments
    if segments is None or segment is None:
        return segments is None and segment is None
    return segments.discovered or segment in segments.values


def _judge_due(
    tick: Tick, model: FleetModel, rollout: Rollout, registry: ModelRegistry, rollouts: RolloutStore
) -> tuple[str, bool] | None:
    """One rollout's step, if its model's `check_every_seconds` has passed since it was last
    judged (the sensor ticks at the shortest of them); None when it is not due yet."""
    unit, every = rollout.model, model.project.spec.serving.canary.check_every_seconds
    # Ticks start at least the sensor's interval apart; a second's slack for jitter.
    if tick.started - tick.cursors.judged.get(unit, 0.0) < every - 1:
        return None
    tick.cursors.judged[unit] = tick.started
    moved: list[bool] = []

    def judge() -> str:
        text, did = _judge_rollout(tick, model, rollout, registry, rollouts)
        moved.append(did)
        return text

    said = tick.guarded(unit, judge)
    return str(said), bool(moved and moved[0])


def _canary_result(
    context: SensorEvaluationContext, judged: list[tuple[Rollout, tuple[str, bool] | None]]
) -> SkipReason | SensorResult:
    """A card refresh for each rollback, or every rollout's words."""
    said = [outcome[0] for _, outcome in judged if outcome is not None]
    cards = [_card_refresh(r, outcome[0]) for r, outcome in judged if outcome and outcome[1]]
    if not said:
        return SkipReason("no rollout due for judging yet")
    if cards:  # the champion moved back: its card must say so
        context.log.info("; ".join(said))
        return SensorResult(run_requests=cards)
    return SkipReason("; ".join(said))


def _card_refresh(rollout: Rollout, why: str) -> RunRequest:
    """A run of `<model>/model_card` (the rolled-back segment's) after a canary rollback."""

    model, segment = split_unit(rollout.model)
    return RunRequest(
        asset_selection=[AssetKey([model, "model_card"])],
        partition_key=segment,
        run_key=f"card-after-rollout-{rollout.id}",
        tags={
            "modelfactory/model": model,
            "modelfactory/trigger": "canary_rollback",
            "modelfactory/reason": why[:1000],
        },
    )


def _live_rule(project: ModelProject) -> Any:
    """How the canary reads late labels of the model (listed only when it has a rollout)."""

    spec = project.spec
    return LiveRule(
        labels=label_folder(project.name),
        target=spec.target,
        task=spec.task,
        metric=spec.metric.name,
        spec=spec.live_metric,
    )


def _judge_rollout(
    tick: Tick, model: FleetModel, rollout: Rollout, registry: ModelRegistry, rollouts: RolloutStore
) -> tuple[str, bool]:
    """One step of an active rollout (of a model, or a segment): what happened, in a few
    words, and whether the champion moved (a rollback)."""

    unit = rollout.model
    name, segment = split_unit(unit)
    try:
        outcome = step(
            rollout,
            model.project.spec.serving.canary,
            warehouse=inference_store(unit),
            store=rollouts,
            registry=registry,
            notifier=tick.notifier,
            live=_live_rule(model.project),
        )
    except WarehouseBusy:
        return f"{unit}: the warehouse is busy; judging on the next tick", False
    if outcome.rollout == rollout:
        return f"{unit}: {rollout.describe()}: {outcome.verdict.reason}", False
    tick.context.instance.report_runless_asset_event(
        AssetObservation(
            asset_key=AssetKey([name, "endpoint"]),
            partition=segment,
            description=f"{outcome.verdict.action}: {outcome.verdict.reason}",
            metadata=outcome.rollout.as_metadata(),
        )
    )
    if outcome.move is not None:
        record_alias_move(outcome.move, tick.context.instance)
    tick.context.log.info(f"{unit}: {outcome.rollout.describe()} ({outcome.verdict.reason})")
    said = f"{unit}: {outcome.rollout.describe()}: {outcome.verdict.reason}"
    return said, outcome.move is not None
