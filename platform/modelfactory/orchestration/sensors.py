"""The sensors of a code location: one per concern, each judging every model of the location.

A location holds many models, and each sensor is an RPC into it per tick, so sensors are not
per model: `modelfactory_canary` moves every rollout on or rolls it back,
`modelfactory_drift` and `modelfactory_live_metric` retrain a model whose live inputs or
live metric moved away from its training, `modelfactory_new_segments` turns a new value of a
model's segment column into a segment, `modelfactory_score_refreshed` scores what a
segment's refresh wrote, and `modelfactory_run_failures` announces every failed run.

Each keeps one JSON cursor holding a cursor per model or segment (a "unit", `<model>` or
`<model>.<segment>`), so a tick reads only what moved since: a count of the inference log's
new rows, a listing of the label files, the rollout table's active rows. One unit's error is
logged and alerted (once per distinct error) and the others are judged all the same.

Sensors start running (`default_status=RUNNING`): a canary that nobody switched on would
leave a new champion at 5% forever. The judging itself lives in plain modules
(modelfactory.lifecycle.canary, monitoring, live); here it is scheduled, and each verdict is
reported on the model's assets, so the UI's event history tells the story.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetKey,
    AssetObservation,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunFailureSensorContext,
    RunRequest,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from modelfactory.errors import LabelsError
from modelfactory.lifecycle.canary import LiveRule, step
from modelfactory.ml.live import champion_holdout, find_labels, judge
from modelfactory.ml.monitoring import compare
from modelfactory.orchestration.batch import run_partition_key
from modelfactory.orchestration.partitions import discover_segments, partitions_def
from modelfactory.orchestration.run_tags import MODEL_TAG
from modelfactory.orchestration.schedules import SCORE_DAYS_TAG
from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import segment_model, split_unit
from modelfactory.stores.home import inference_store, label_folder
from modelfactory.stores.inference_log import WarehouseBusy
from modelfactory.stores.inference_reader import count_new, read_labelled, read_window
from modelfactory.stores.instance import each_segment, record_alias_move
from modelfactory.stores.notify import Alert, Notifier
from modelfactory.stores.registry import ModelRegistry
from modelfactory.stores.rollouts import Rollout, RolloutStore
from modelfactory.stores.urls import dagster_asset_url, dagster_run_url

if TYPE_CHECKING:
    from modelfactory.ml.live import LabelFiles

__all__ = [
    "CANARY_SENSOR",
    "CHAMPION_TAG",
    "DRIFT_SENSOR",
    "DRIFT_WINDOW_TAG",
    "LIVE_METRIC_SENSOR",
    "NEW_SEGMENTS_SENSOR",
    "RUN_FAILURES_SENSOR",
    "SCORE_REFRESHED_SENSOR",
    "SensorCursor",
    "build_sensors",
    "describe_run_failure",
    "model_of_run",
    "unit_cursor",
]


# On the runs a drift verdict requests: the receive time the judged window starts after
# ("" for the first window), so the drift report reads the very rows the sensor judged.
DRIFT_WINDOW_TAG = "modelfactory/drift_window_after"
# On the runs a sensor's verdict requests: the champion version it judged, so the drift
# report compares with that version's reference even if a retrain promoted another since.
CHAMPION_TAG = "modelfactory/champion"

# Names are per code location, so one of each is all a location needs.
CANARY_SENSOR = "modelfactory_canary"
DRIFT_SENSOR = "modelfactory_drift"
LIVE_METRIC_SENSOR = "modelfactory_live_metric"
NEW_SEGMENTS_SENSOR = "modelfactory_new_segments"
SCORE_REFRESHED_SENSOR = "modelfactory_score_refreshed"
RUN_FAILURES_SENSOR = "modelfactory_run_failures"

Jobs = Mapping[str, JobDefinition | None]
Outcome = str | list[RunRequest]  # what judging one unit decided: words, or runs to request


@dataclass(frozen=True)
class _Model:
    """One model of the location and its jobs by role (`train`, `predict`, `drift_report`,
    `live_metrics`, and `refresh` where a segmented model refreshes apart from predicting)."""

    project: ModelProject
    jobs: Jobs

    @property
    def name(self) -> str:
        return self.project.name

    def job(self, role: str) -> JobDefinition:
        job = self.jobs.get(role)
        if job is None:
            raise KeyError(f"{self.name} has no {role} job")
        return job


def build_sensors(models: Sequence[tuple[ModelProject, Jobs]]) -> list[SensorDefinition]:
    """The location's sensors, one per concern, over every model in `models` (each with its
    jobs by role, as build_definitions makes them). A concern no model has gets no sensor."""
    fleet = [_Model(project, jobs) for project, jobs in models]
    sensors = [_run_failure_sensor(fleet)]
    if not fleet:
        return sensors
    sensors += [_canary_sensor(fleet), _drift_sensor(fleet), _live_metric_sensor(fleet)]
    discovered = [m for m in fleet if _discovers_segments(m.project)]
    if discovered:
        sensors.append(_new_segment_sensor(discovered))
    refreshed = [m for m in fleet if m.jobs.get("refresh") is not None]
    if refreshed:
        sensors.append(_score_refreshed_sensor(refreshed))
    return sensors


# -- the cursor and the per-unit loop ---------------------------------------------------


class SensorCursor:
    """A sensor's cursor over many models, as one JSON object: `units` holds each unit's own
    cursor (what it judged last), `failing` the error a unit's judging last raised (alerted
    once, forgotten when the unit is judged again), `judged` when a unit was last judged (for
    a rule with its own interval), `seen` what a unit's store looked like when last read (so
    an unchanged store is not read again). A cursor from before any of this starts afresh."""

    def __init__(self, raw: str | None) -> None:
        try:
            found = json.loads(raw) if raw else {}
        except ValueError:
            found = {}
        found = found if isinstance(found, dict) else {}
        self.units: dict[str, str] = dict(found.get("units") or {})
        self.failing: dict[str, str] = dict(found.get("failing") or {})
        self.judged: dict[str, float] = dict(found.get("judged") or {})
        self.seen: dict[str, str] = dict(found.get("seen") or {})
        self._raw = self.dump()

    def get(self, unit: str) -> str | None:
        return self.units.get(unit)

    def set(self, unit: str, value: str) -> None:
        self.units[unit] = value

    def dump(self) -> str:
        data = {
            "units": self.units,
            "failing": self.failing,
            "judged": self.judged,
            "seen": self.seen,
        }
        return json.dumps({k: v for k, v in data.items() if v}, sort_keys=True)

    def save(self, context: SensorEvaluationContext) -> None:
        """Write the cursor back only when it changed: most ticks change nothing."""
        if self.dump() != self._raw:
            context.update_cursor(self.dump())


def unit_cursor(raw: str | None, unit: str) -> str | None:
    """One unit's cursor inside a sensor's (for tests and tools that read a sensor's state)."""
    return SensorCursor(raw).get(unit)


@dataclass
class _Tick:
    """What judging one unit needs from the tick around it."""

    context: SensorEvaluationContext
    cursors: SensorCursor
    notifier: Notifier
    concern: str  # "drift check", "live check", ...
    many: bool  # more than one model: every message names its model
    started: float = field(default_factory=time.time)

    def speaker(self, unit: str, segment: str | None) -> Callable[[str], str]:
        """Messages name the unit they are about; a lone unsegmented model's stay bare."""
        if segment or self.many:
            return lambda message: f"{unit}: {message}"
        return lambda message: message

    def guarded(self, unit: str, judge: Callable[[], Outcome], what: str = "") -> Outcome:
        """`judge()`, or on its error: the unit's cursor as it was, the error logged and
        alerted (once per distinct error of this unit and `what`), and a message; the other
        units go on."""
        before, key = self.cursors.get(unit), f"{unit}{what}"
        try:
            outcome = judge()
        except Exception as exc:
            return self._failed(unit, key, before, exc)
        self.cursors.failing.pop(key, None)
        return outcome

    def _failed(self, unit: str, key: str, before: str | None, exc: Exception) -> str:

        if before is None:
            self.cursors.units.pop(unit, None)
        else:
            self.cursors.set(unit, before)  # judged again on the next tick
        text = f"the {self.concern} failed ({type(exc).__name__}: {exc})"
        self.context.log.exception(f"{unit}: {text}")
        if self.cursors.failing.get(key) != text:
            alert = Alert(model=unit, event="sensor_failed", text=text, severity="error")
            self.notifier.send(alert)
            self.cursors.failing[key] = text
        return f"{unit}: {text}"


def _combined(context: SensorEvaluationContext, outcomes: list[Outcome]) -> SkipReason | list:
    """The runs any unit asked for, or every unit's reason to ask for none. With runs to
    request, the other units' reasons go to the tick's log, so none is lost."""
    requests = [r for outcome in outcomes if isinstance(outcome, list) for r in outcome]
    if requests:
        for said in (o for o in outcomes if isinstance(o, str)):
            context.log.info(said)
        return requests
    return SkipReason("; ".join(o for o in outcomes if isinstance(o, str)))


def _segments(context: SensorEvaluationContext, project: ModelProject) -> list[str | None]:
    """The segments to judge one by one, or [None] for an unsegmented model."""

    return each_segment(project.spec, context.instance)


def _discovers_segments(project: ModelProject) -> bool:
    segments = project.spec.segments
    return segments is not None and segments.discovered


def _all_jobs(models: Sequence[_Model], *roles: str) -> list[JobDefinition]:
    return [model.job(role) for model in models for role in roles]


# -- drift ------------------------------------------------------------------------------


def _drift_sensor(models: list[_Model]) -> SensorDefinition:
    many = len(models) > 1

    @sensor(
        name=DRIFT_SENSOR,
        jobs=_all_jobs(models, "train", "drift_report"),
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Every `drift.window` requests a model's endpoint answered, compares their inputs "
            "with its champion's training data (the model's drift method and threshold); when "
            "more than `drift.max_share` of the columns drifted, retrains the model (a "
            "segment on its own traffic, retraining only itself). Judges " + _listed(models)
        ),
    )
    def drift_sensor(
        context: SensorEvaluationContext, model_registry: ModelRegistry, notifier: Notifier
    ) -> SkipReason | list[RunRequest]:
        tick = _Tick(context, SensorCursor(context.cursor), notifier, "drift check", many)
        outcomes = [
            tick.guarded(
                _unit(model, segment),
                lambda m=model, s=segment: _check_drift(tick, m, s, model_registry),
            )
            for model in models
            for segment in _segments(context, model.project)
        ]
        tick.cursors.save(context)
        return _combined(context, outcomes)

    return drift_sensor


def _unit(model: _Model, segment: str | None) -> str:

    return segment_model(model.name, segment)


def _listed(models: Sequence[_Model]) -> str:
    """The models a sensor judges, for its description in the UI."""
    names = [m.name for m in models]
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return f"{len(names)} model{'s' if len(names) != 1 else ''}: {shown}."


def _check_drift(
    tick: _Tick, model: _Model, segment: str | None, registry: ModelRegistry
) -> Outcome:
    """Judge the window of new requests of the model (or one segment): a message, or the
    retrain and report runs to request. Most ticks end at the count of new rows, before the
    window, the registry or any artifact is read."""

    name, drift = model.name, model.project.spec.drift
    unit = _unit(model, segment)
    said = tick.speaker(unit, segment)
    try:
        new = _new_rows(tick, unit, drift.window)
    except WarehouseBusy:
        return said(f"{name}'s warehouse is busy; reading on the next tick")
    if new < drift.window:
        return said(f"{new}/{drift.window} new rows since the last check")
    if _in_flight(tick.context, model.job("train").name, segment):  # judged after it
        return said(f"a retrain of {unit} is under way; judging the window after it")
    champion = registry.champion(unit)
    if champion is None:
        return said(f"{unit} has no champion to compare live data with")
    reference = registry.reference_profile(unit, champion.version)
    if reference is None:
        return said(f"champion v{champion.version} was logged without a reference")
    return _judge_window(tick, model, segment, registry, champion.version, reference)


def _new_rows(tick: _Tick, unit: str, window: int) -> int:
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
    tick: _Tick,
    model: _Model,
    segment: str | None,
    registry: ModelRegistry,
    champion: str,
    reference: Any,
) -> Outcome:
    """Compare the unit's window with the champion's reference, record the verdict on
    `<model>/drift_report`, and on drift alert and ask for a retrain and a report."""

    drift, unit = model.project.spec.drift, _unit(model, segment)
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
    tick: _Tick,
    model: _Model,
    segment: str | None,
    registry: ModelRegistry,
    champion: str,
    result: Any,
    window: tuple[datetime, datetime],
    cursor: str | None,
) -> list[RunRequest]:
    """The alert and the runs a drifted window asks for: one retrain and one report per
    judged window (its run key), however often it is evaluated."""

    unit, (first, last) = _unit(model, segment), window
    tick.notifier.send(
        Alert(
            model=unit,
            event="drift_retrain",
            text=f"retraining: {result.describe()}",
            severity="warning",
            links=_evidence_links(registry, unit, champion, "drift_report"),
        )
    )
    return _retrain_requests(
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


def _retrain_requests(
    *, run_key: str, jobs: dict[str, JobDefinition], segment: str | None, tags: dict[str, str]
) -> list[RunRequest]:
    """A retrain and the run refreshing its evidence (report or metrics), of one segment if
    given. `jobs` by run-key suffix; the run keys make Dagster launch each run once,
    however often it is requested."""
    return [
        RunRequest(
            job_name=job.name,
            run_key=f"{run_key}:{suffix}" if suffix else run_key,
            tags=tags,
            partition_key=segment,
        )
        for suffix, job in jobs.items()
    ]


def _evidence_links(
    registry: ModelRegistry, unit: str, champion: str, evidence: str
) -> dict[str, str]:
    """Where on-call looks after a retrain alert: the evidence asset (its report or table,
    refreshed by the run requested with the retrain), the retrain job, the champion."""

    model, _ = split_unit(unit)
    return {
        evidence.replace("_", " "): dagster_asset_url(model, evidence),
        "retrain runs": dagster_asset_url(model, "candidate"),
        f"champion v{champion}": registry.version_url(unit, champion),
    }


def _in_flight(context: SensorEvaluationContext, job_name: str, segment: str | None = None) -> bool:
    """Is a run of the job (for this segment) queued or running? Then a second retrain
    would only repeat it."""
    from dagster import RunsFilter

    waiting = [
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
    ]
    tags = {"dagster/partition": segment} if segment else {}
    runs = context.instance.get_run_records(
        filters=RunsFilter(job_name=job_name, statuses=waiting, tags=tags), limit=1
    )
    return bool(runs)


# -- live metric ------------------------------------------------------------------------


def _live_metric_sensor(models: list[_Model]) -> SensorDefinition:
    many = len(models) > 1

    @sensor(
        name=LIVE_METRIC_SENSOR,
        jobs=_all_jobs(models, "train", "live_metrics"),
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "When new label files arrive for a model, joins them with its champion's captured "
            "predictions; when the champion's live metric is worse than on the holdout by more "
            "than `live_metric.tolerance` (on at least `live_metric.min_labels` labelled "
            "rows), retrains it. Judges " + _listed(models)
        ),
    )
    def live_metric_sensor(
        context: SensorEvaluationContext, model_registry: ModelRegistry, notifier: Notifier
    ) -> SkipReason | list[RunRequest]:
        tick = _Tick(context, SensorCursor(context.cursor), notifier, "live check", many)
        outcomes = [o for m in models for o in _live_of_model(tick, m, model_registry)]
        tick.cursors.save(context)
        return _combined(context, outcomes)

    return live_metric_sensor


def _live_of_model(tick: _Tick, model: _Model, registry: ModelRegistry) -> list[Outcome]:
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
            _unit(model, segment),
            lambda s=segment: _check_live_metric(tick, model, s, listed[0], registry),
        )
        for segment in _segments(tick.context, model.project)
    ]


def _check_live_metric(
    tick: _Tick, model: _Model, segment: str | None, labels: LabelFiles, registry: ModelRegistry
) -> Outcome:
    """Judge the champion of the model (or one segment) on the labelled rows: a message, or
    the retrain and live-metrics runs to request."""

    unit = _unit(model, segment)
    said = tick.speaker(unit, segment)
    # cursor: "<label files judged>|<champion a retrain was already requested for>"
    judged, _, retrained = (tick.cursors.get(unit) or "").partition("|")
    if labels.fingerprint == judged:
        return said("no new labels since the last check")
    if _in_flight(tick.context, model.job("train").name, segment):
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


def _live_verdict(model: _Model, unit: str, labels: LabelFiles, champion: Any) -> Any:
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
    model: _Model,
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
    tick: _Tick,
    model: _Model,
    segment: str | None,
    registry: ModelRegistry,
    champion: str,
    verdict: Any,
) -> list[RunRequest]:
    """The alert and the runs a degraded champion asks for: one retrain (and one live-metrics
    run) per degraded champion, however often it is evaluated."""

    unit, metric = _unit(model, segment), model.project.spec.metric.name
    tick.notifier.send(
        Alert(
            model=unit,
            event="live_metric_retrain",
            text=f"retraining: {verdict.describe()}",
            severity="warning",
            links=_evidence_links(registry, unit, champion, "live_metrics"),
        )
    )
    return _retrain_requests(
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


# -- canary -----------------------------------------------------------------------------


def _canary_sensor(models: list[_Model]) -> SensorDefinition:
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
            "`check_every_seconds`. Judges " + _listed(models)
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
        tick = _Tick(context, SensorCursor(context.cursor), notifier, "canary step", True)
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
    active: Mapping[str, Rollout], models: Mapping[str, _Model]
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
    tick: _Tick, model: _Model, rollout: Rollout, registry: ModelRegistry, rollouts: RolloutStore
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
    tick: _Tick, model: _Model, rollout: Rollout, registry: ModelRegistry, rollouts: RolloutStore
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


# -- segment discovery ------------------------------------------------------------------


def _new_segment_sensor(models: list[_Model]) -> SensorDefinition:
    @sensor(
        name=NEW_SEGMENTS_SENSOR,
        jobs=_all_jobs(models, "train"),
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Reads the raw data of each model with discovered segments every 5 minutes; a "
            "value of its `segments.by` column seen for the first time becomes a segment (a "
            "partition of every asset of the model) and its first model trains. Reads "
            + _listed(models)
        ),
    )
    def new_segment_sensor(
        context: SensorEvaluationContext, notifier: Notifier
    ) -> SensorResult | SkipReason:
        tick = _Tick(
            context, SensorCursor(context.cursor), notifier, "segment discovery", len(models) > 1
        )
        found = {m.name: tick.guarded(m.name, lambda m=m: _new_segments(tick, m)) for m in models}
        tick.cursors.save(context)
        return _segment_result(models, found)

    return new_segment_sensor


def _new_segments(tick: _Tick, model: _Model) -> Outcome:
    """The model's first-train runs of segments its raw data holds and Dagster does not
    know yet, or the words for none."""

    partitions = partitions_def(model.project.spec)
    known = set(partitions.get_partition_keys(dynamic_partitions_store=tick.context.instance))
    new = [s for s in discover_segments(model.project) if s not in known]
    if not new:
        by = model.project.spec.segments.by
        return tick.speaker(model.name, None)(f"no new values of {by!r} ({len(known)} segments)")
    return [
        RunRequest(
            job_name=model.job("train").name,
            partition_key=s,
            # Run keys are per sensor, which all models share: the unit names the model.
            run_key=f"first-{segment_model(model.name, s)}",
        )
        for s in new
    ]


def _segment_result(models: list[_Model], found: dict[str, Outcome]) -> SensorResult | SkipReason:
    """The first-train runs and the partitions they need, added in the same tick."""

    adds = [
        partitions_def(m.project.spec).build_add_request([r.partition_key for r in found[m.name]])
        for m in models
        if isinstance(found[m.name], list)
    ]
    if not adds:
        return SkipReason("; ".join(str(o) for o in found.values()))
    requests = [r for o in found.values() if isinstance(o, list) for r in o]
    return SensorResult(run_requests=requests, dynamic_partitions_requests=adds)


# -- scoring after a refresh ------------------------------------------------------------


def _score_refreshed_sensor(models: list[_Model]) -> SensorDefinition:
    """Scores the days a successful refresh run of a segment was scheduled for, with the
    features it just wrote: the second half of a segmented model's daily predict tick."""
    by_job = {m.job("refresh").name: m for m in models}

    @run_status_sensor(
        name=SCORE_REFRESHED_SENSOR,
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=_all_jobs(models, "refresh"),
        request_jobs=_all_jobs(models, "predict"),
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "When a scheduled refresh of one of a model's segments succeeds, scores that "
            "segment's days it was scheduled for. Watches " + _listed(models)
        ),
    )
    def score_refreshed(context: RunStatusSensorContext) -> SkipReason | list[RunRequest]:
        run = context.dagster_run
        model = by_job.get(run.job_name)
        if model is None:
            return SkipReason(f"run {run.run_id[:8]} of {run.job_name} is no model's refresh")
        return _score_requests(model, run)

    return score_refreshed


def _score_requests(model: _Model, run: Any) -> SkipReason | list[RunRequest]:
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


# -- run failures -----------------------------------------------------------------------


def _run_failure_sensor(models: list[_Model]) -> SensorDefinition:
    """On call hears of every failed run, bad data included: a blocking check that fails at
    ERROR severity fails its run, so it arrives here too. Without `monitored_jobs` it watches
    every job of the code location, materializations from the UI included."""
    names = [m.name for m in models]

    @run_failure_sensor(
        name=RUN_FAILURES_SENSOR,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Announces every failed run of the location's models, from their jobs or the UI "
            "(failed blocking checks included): the model, the failing steps and checks, the "
            "error, and a link to the run. Watches " + (_listed(models) if models else "no model.")
        ),
    )
    def run_failures(context: RunFailureSensorContext, notifier: Notifier) -> None:

        run = context.dagster_run
        notifier.send(
            Alert(
                model=model_of_run(run, names),
                event="run_failed",
                text=describe_run_failure(context),
                severity="error",
                links={"run": dagster_run_url(run.run_id)},
            )
        )

    return run_failures


def model_of_run(run: Any, models: Sequence[str]) -> str:
    """Which model a run was about: its `modelfactory/model` tag (every job of a model has
    it), else the first part of the asset keys it materialized (a run launched from the UI),
    else the model whose name its job's starts with; "unknown" if none says."""

    if run.tags.get(MODEL_TAG):
        return run.tags[MODEL_TAG]
    keys = set(run.asset_selection or ()) | {c.asset_key for c in run.asset_check_selection or ()}
    owners = sorted({key.path[0] for key in keys})
    if owners:
        return ",".join(owners)
    prefixed = [m for m in models if run.job_name.startswith(f"{m}_")]
    if prefixed:
        return max(prefixed, key=len)
    return models[0] if len(models) == 1 else "unknown"


def describe_run_failure(context: RunFailureSensorContext, limit: int = 500) -> str:
    """Which job failed, at which steps, on which checks, and why, from the run's own events.

    Each error is cut to `limit` characters: the message says where to look, the run has it all.
    """
    from dagster import DagsterEventType

    run = context.dagster_run
    lines = [f"{run.job_name} run {run.run_id[:8]} failed."]
    evaluations = context.instance.get_records_for_run(
        run_id=run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    for record in evaluations:
        check = record.event_log_entry.dagster_event.event_specific_data
        if not check.passed:
            lines.append(
                f"Check {check.check_name} on {check.asset_key.to_user_string()} failed "
                f"({check.severity.value}): {(check.description or 'no description')[:limit]}"
            )
    failures = context.get_step_failure_events() or [context.failure_event]
    for event in failures:
        error = event.event_specific_data and getattr(event.event_specific_data, "error", None)
        reason = _error_chain(error) if error else event.message or "no error recorded"
        lines.append(f"Step {event.step_key or '(run)'}: {reason[:limit]}")
    return "\n".join(lines)


def _error_chain(error: Any) -> str:
    """An error and what caused it, one line each, without module paths: Dagster wraps a
    model's own error ("while loading input ...") and the cause is what on call needs."""
    import re

    parts = []
    while error is not None:
        paragraph = error.message.strip().split("\n\n")[0]  # not the stack or query dumps
        text = " ".join(line.strip() for line in paragraph.splitlines())
        parts.append(re.sub(r"^[\w.]+\.(\w+: )", r"\1", text).rstrip(":"))
        error = error.cause
    return "; caused by ".join(part for part in parts if part)
