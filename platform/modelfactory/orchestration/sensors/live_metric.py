"""`modelfactory_live_metric`: retrain a model whose metric on labelled live traffic fell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

from modelfactory.errors import LabelsError
from modelfactory.ml.live import champion_holdout, find_labels, judge
from modelfactory.orchestration.sensors.names import CHAMPION_TAG, LIVE_METRIC_SENSOR
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
from modelfactory.stores.home import inference_store, label_folder
from modelfactory.stores.inference_log import WarehouseBusy
from modelfactory.stores.inference_reader import read_labelled
from modelfactory.stores.notify import Alert, Notifier
from modelfactory.stores.registry import ModelRegistry

if TYPE_CHECKING:
    from modelfactory.ml.live import LabelFiles


def build_live_metric_sensor(models: list[FleetModel]) -> SensorDefinition:
    many = len(models) > 1

    @sensor(
        name=LIVE_METRIC_SENSOR,
        jobs=all_jobs(models, "train", "live_metrics"),
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "When new label files arrive for a model, joins them with its champion's captured "
            "predictions; when the champion's live metric is worse than on the holdout by more "
            "than `live_metric.tolerance` (on at least `live_metric.min_labels` labelled "
            "rows), retrains it. Judges " + listed(models)
        ),
    )
    def live_metric_sensor(
        context: SensorEvaluationContext, model_registry: ModelRegistry, notifier: Notifier
    ) -> SkipReason | list[RunRequest]:
        tick = Tick(context, SensorCursor(context.cursor), notifier, "live check", many)
        outcomes = [o for m in models for o in _live_of_model(tick, m, model_registry)]
        tick.cursors.save(context)
        return combined(context, outcomes)

    return live_metric_sensor


def _live_of_model(tick: Tick, model: FleetModel, registry: ModelRegistry) -> list[Outcome]:
    """Every unit of one model judged on its label files: listed once per model (one folder
    per model; rows join their segment's log), and most ticks end at the listing."""

    listed: list[LabelFiles] = []

    def listing() -> str:
        folder = label_folder(model.name)
        listed.append(find_labels(folder))
        return tick.speaker(model.name, None)(f"no label files in {folder} yet")

    said = tick.guarded(model.name, listing, what=" labels")  # a folder or bucket failing
    if not listed or not listed[0].files:
        return [said]
    return [
        tick.guarded(
            unit_of(model, segment),
            lambda s=segment: _check_live_metric(tick, model, s, listed[0], registry),
        )
        for segment in segments_to_judge(tick.context, model.project)
    ]


def _check_live_metric(
    tick: Tick, model: FleetModel, segment: str | None, labels: LabelFiles, registry: ModelRegistry
) -> Outcome:
    """Judge the champion of the model (or one segment) on the labelled rows: a message, or
    the retrain and live-metrics runs to request."""

    unit = unit_of(model, segment)
    said = tick.speaker(unit, segment)
    # cursor: "<label files judged>|<champion a retrain was already requested for>"
    judged, _, retrained = (tick.cursors.get(unit) or "").partition("|")
    if labels.fingerprint == judged:
        return said("no new labels since the last check")
    if in_flight(tick.context, model.job("train").name, segment):
        return said(f"a retrain of {unit} is under way; judging the labels after it")
    champion = registry.champion(unit)
    if champion is None:
        return said(f"{unit} has no champion to judge")
    try:
        verdict = _live_verdict(model, unit, labels, champion)
    except WarehouseBusy:
        return said(f"{model.name}'s warehouse is busy; reading on the next tick")
    except LabelsError as exc:  # said once per set of files, then waits for a fix
        tick.cursors.set(unit, f"{labels.fingerprint}|{retrained}")
        tick.notifier.send(Alert(model=unit, event="labels_unreadable", text=str(exc)))
        return said(str(exc))
    _observe_live(tick.context, model, segment, verdict, champion.version)
    if not verdict.degraded or retrained == champion.version:
        tick.cursors.set(unit, f"{labels.fingerprint}|{retrained}")  # judged: not read again
        if verdict.degraded:  # one retrain per champion: then the schedule's, or a new one's
            return said(f"{verdict.describe()}; its retrain was requested already")
        return said(verdict.describe())
    tick.cursors.set(unit, f"{labels.fingerprint}|{champion.version}")
    return _live_retrain(tick, model, segment, registry, champion.version, verdict)


def _live_verdict(model: FleetModel, unit: str, labels: LabelFiles, champion: Any) -> Any:
    """The champion's live metric on its newest labelled rows, against its holdout's (a label
    that is none of the model's classes raises LabelsError, as an unreadable file does)."""

    spec = model.project.spec
    labelled = read_labelled(
        inference_store(unit), unit, labels.files, target=spec.target, limit=spec.live_metric.window
    )
    return judge(
        labelled,
        version=champion.version,
        task=spec.task,
        metric=spec.metric.name,
        holdout=champion_holdout(champion.tags, spec.metric.name),
        spec=spec.live_metric,
    )


def _observe_live(
    context: SensorEvaluationContext,
    model: FleetModel,
    segment: str | None,
    verdict: Any,
    champion: str,
) -> None:
    """The live metric on `<model>/live_metrics`, where the UI plots it over time."""
    if verdict.live is None:
        return
    metric = model.project.spec.metric.name
    context.instance.report_runless_asset_event(
        AssetObservation(
            asset_key=AssetKey([model.name, "live_metrics"]),
            partition=segment,
            description=f"live check: {verdict.describe()}",
            metadata={
                f"live_{metric}": verdict.live,
                "labelled_rows": verdict.rows,
                "champion_version": champion,
                "verdict": "degraded" if verdict.degraded else "ok",
            },
        )
    )


def _live_retrain(
    tick: Tick,
    model: FleetModel,
    segment: str | None,
    registry: ModelRegistry,
    champion: str,
    verdict: Any,
) -> list[RunRequest]:
    """The alert and the runs a degraded champion asks for: one retrain (and one live-metrics
    run) per degraded champion, however often it is evaluated."""

    unit, metric = unit_of(model, segment), model.project.spec.metric.name
    tick.notifier.send(
        Alert(
            model=unit,
            event="live_metric_retrain",
            text=f"retraining: {verdict.describe()}",
            severity="warning",
            links=evidence_links(registry, unit, champion, "live_metrics"),
        )
    )
    return retrain_requests(
        run_key=f"live:{unit}:v{champion}",
        jobs={"": model.job("train"), "metrics": model.job("live_metrics")},
        segment=segment,
        tags={
            "modelfactory/model": model.name,
            "modelfactory/trigger": "live_metric",
            f"modelfactory/live_{metric}": f"{verdict.live:.6g}",
            f"modelfactory/holdout_{metric}": f"{verdict.holdout:.6g}",
            CHAMPION_TAG: champion,
        },
    )
