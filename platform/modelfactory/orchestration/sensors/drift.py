"""`modelfactory_drift`: retrain a model whose live inputs moved away from its training data.

At rest a tick only asks each model's inference log whether it changed (a file stat for
DuckDB), so a quiet fleet costs next to nothing.
"""

from __future__ import annotations

from datetime import datetime
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

from modelfactory.ml.monitoring import compare
from modelfactory.orchestration.sensors.names import CHAMPION_TAG, DRIFT_SENSOR, DRIFT_WINDOW_TAG
from modelfactory.orchestration.sensors.retrain import evidence_links, retrain_requests
from modelfactory.orchestration.sensors.tick import (
    FleetModel,
    Outcome,
    SensorCursor,
    Tick,
    all_jobs,
    combined,
    in_flight,
    listed,
    segments_to_judge,
    unit_of,
)
from modelfactory.stores.home import inference_store
from modelfactory.stores.inference_log import WarehouseBusy
from modelfactory.stores.inference_reader import count_new, read_window
from modelfactory.stores.notify import Alert, Notifier
from modelfactory.stores.registry import ModelRegistry


def build_drift_sensor(models: list[FleetModel]) -> SensorDefinition:
    many = len(models) > 1

    @sensor(
        name=DRIFT_SENSOR,
        jobs=all_jobs(models, "train", "drift_report"),
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Every `drift.window` requests a model's endpoint answered, compares their inputs "
            "with its champion's training data (the model's drift method and threshold); when "
            "more than `drift.max_share` of the columns drifted, retrains the model (a "
            "segment on its own traffic, retraining only itself). Judges " + listed(models)
        ),
    )
    def drift_sensor(
        context: SensorEvaluationContext, model_registry: ModelRegistry, notifier: Notifier
    ) -> SkipReason | list[RunRequest]:
        tick = Tick(context, SensorCursor(context.cursor), notifier, "drift check", many)
        outcomes = [
            tick.guarded(
                unit_of(model, segment),
                lambda m=model, s=segment: _check_drift(tick, m, s, model_registry),
            )
            for model in models
            for segment in segments_to_judge(context, model.project)
        ]
        tick.cursors.save(context)
        return combined(context, outcomes)

    return drift_sensor


def _check_drift(
    tick: Tick, model: FleetModel, segment: str | None, registry: ModelRegistry
) -> Outcome:
    """Judge the window of new requests of the model (or one segment): a message, or the
    retrain and report runs to request. Most ticks end at the count of new rows, before the
    window, the registry or any artifact is read."""

    name, drift = model.name, model.project.spec.drift
    unit = unit_of(model, segment)
    said = tick.speaker(unit, segment)
    try:
        new = _new_rows(tick, unit, drift.window)
    except WarehouseBusy:
        return said(f"{name}'s warehouse is busy; reading on the next tick")
    if new < drift.window:
        return said(f"{new}/{drift.window} new rows since the last check")
    if in_flight(tick.context, model.job("train").name, segment):  # judged after it
        return said(f"a retrain of {unit} is under way; judging the window after it")
    champion = registry.champion(unit)
    if champion is None:
        return said(f"{unit} has no champion to compare live data with")
    reference = registry.reference_profile(unit, champion.version)
    if reference is None:
        return said(f"champion v{champion.version} was logged without a reference")
    return _judge_window(tick, model, segment, registry, champion.version, reference)


def _new_rows(tick: Tick, unit: str, window: int) -> int:
    """How many rows arrived after the unit's cursor (up to `window`): as counted on an
    earlier tick when the store's change token is the same as then (nothing was written
    since, so nothing is opened), else counted now."""

    store = inference_store(unit)
    token = store.change_token()  # before the count: a write after it changes the token
    seen, _, counted = (tick.cursors.seen.get(unit) or "").rpartition("|")
    if token is not None and seen == token:
        return int(counted)
    cursor = tick.cursors.get(unit)
    after = datetime.fromisoformat(cursor) if cursor else None
    new = count_new(store, unit, after=after, limit=window)
    if token is not None:
        tick.cursors.seen[unit] = f"{token}|{new}"
    return new


def _judge_window(
    tick: Tick,
    model: FleetModel,
    segment: str | None,
    registry: ModelRegistry,
    champion: str,
    reference: Any,
) -> Outcome:
    """Compare the unit's window with the champion's reference, record the verdict on
    `<model>/drift_report`, and on drift alert and ask for a retrain and a report."""

    drift, unit = model.project.spec.drift, unit_of(model, segment)
    said = tick.speaker(unit, segment)
    cursor = tick.cursors.get(unit)
    after = datetime.fromisoformat(cursor) if cursor else None
    try:
        window, first, last = read_window(
            inference_store(unit), unit, after=after, limit=drift.window
        )
    except WarehouseBusy:
        return said(f"{model.name}'s warehouse is busy; reading on the next tick")
    if len(window) < drift.window:  # rows went away between the count and the read
        return said(f"{len(window)}/{drift.window} new rows since the last check")
    result = compare(reference, window, drift)
    tick.cursors.set(unit, last.isoformat())  # judged: never read again
    tick.cursors.seen.pop(unit, None)  # counted from the old cursor: count again
    _observe_drift(tick.context, model.name, segment, result, (first, last), champion)
    if not result.drifted:
        return said(result.describe())
    return _drift_retrain(tick, model, segment, registry, champion, result, (first, last), cursor)


def _observe_drift(
    context: SensorEvaluationContext,
    model: str,
    segment: str | None,
    result: Any,
    window: tuple[datetime, datetime],
    champion: str,
) -> None:
    """Every judged window, drifted or not, on `<model>/drift_report`: the UI plots it."""
    first, last = window
    context.instance.report_runless_asset_event(
        AssetObservation(
            asset_key=AssetKey([model, "drift_report"]),
            partition=segment,
            description=f"drift check: {result.describe()}",
            metadata={
                "drift_share": result.share,
                "drifted_columns": ", ".join(result.drifted_columns) or "none",
                "window_rows": result.rows,
                "window": f"{first.isoformat()} .. {last.isoformat()}",
                "champion_version": champion,
            },
        )
    )


def _drift_retrain(
    tick: Tick,
    model: FleetModel,
    segment: str | None,
    registry: ModelRegistry,
    champion: str,
    result: Any,
    window: tuple[datetime, datetime],
    cursor: str | None,
) -> list[RunRequest]:
    """The alert and the runs a drifted window asks for: one retrain and one report per
    judged window (its run key), however often it is evaluated."""

    unit, (first, last) = unit_of(model, segment), window
    tick.notifier.send(
        Alert(
            model=unit,
            event="drift_retrain",
            text=f"retraining: {result.describe()}",
            severity="warning",
            links=evidence_links(registry, unit, champion, "drift_report"),
        )
    )
    return retrain_requests(
        run_key=f"drift:{unit}:{first.isoformat()}:{last.isoformat()}",
        jobs={"": model.job("train"), "report": model.job("drift_report")},
        segment=segment,
        tags={
            "modelfactory/model": model.name,
            "modelfactory/trigger": "drift",
            "modelfactory/drift_share": f"{result.share:.3f}",
            "modelfactory/drifted_columns": ",".join(result.drifted_columns),
            CHAMPION_TAG: champion,
            DRIFT_WINDOW_TAG: cursor or "",
        },
    )
