"""Sensors of one model: the canary that moves a rollout on or rolls it back, and the drift
watch that retrains the model when live inputs move away from its training data.

Sensors start running (`default_status=RUNNING`): a canary that nobody switched on would
leave a new champion at 5% forever. The work is in modelfactory.lifecycle.canary; here it is
scheduled, and each change is reported on `<model>/endpoint` (and on `<model>/champion`
for a rollback), so the UI's event history tells the rollout's story.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    DagsterRunStatus,
    DefaultSensorStatus,
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
from modelfactory.orchestration.schedules import SCORE_DAYS_TAG
from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import segment_model, split_unit
from modelfactory.stores.home import inference_store, label_folder
from modelfactory.stores.inference_log import WarehouseBusy
from modelfactory.stores.inference_reader import read_labelled, read_window
from modelfactory.stores.instance import each_segment, record_alias_move
from modelfactory.stores.notify import Alert, Notifier
from modelfactory.stores.registry import ModelRegistry
from modelfactory.stores.rollouts import Rollout, RolloutStore
from modelfactory.stores.urls import dagster_asset_url, dagster_run_url

__all__ = [
    "CHAMPION_TAG",
    "DRIFT_WINDOW_TAG",
    "build_sensors",
    "canary_sensor_name",
    "describe_run_failure",
    "drift_sensor_name",
    "live_metric_sensor_name",
    "run_failure_sensor_name",
    "score_refreshed_sensor_name",
]


# On the runs a drift verdict requests: the receive time the judged window starts after
# ("" for the first window), so the drift report reads the very rows the sensor judged.
DRIFT_WINDOW_TAG = "modelfactory/drift_window_after"
# On the runs a sensor's verdict requests: the champion version it judged, so the drift
# report compares with that version's reference even if a retrain promoted another since.
CHAMPION_TAG = "modelfactory/champion"


def canary_sensor_name(model: str) -> str:
    return f"{model}_canary"


def drift_sensor_name(model: str) -> str:
    return f"{model}_drift"


def live_metric_sensor_name(model: str) -> str:
    return f"{model}_live_metric"


def segment_sensor_name(model: str) -> str:
    return f"{model}_new_segments"


def score_refreshed_sensor_name(model: str) -> str:
    return f"{model}_score_refreshed"


def build_sensors(project: ModelProject, jobs: dict[str, Any]) -> list[SensorDefinition]:
    """The model's sensors. `jobs` by role: `train` (what a retrain runs), `drift_report`
    and `live_metrics` (the evidence a retrain comes with), `predict`, and `refresh` where
    a segmented model's features are refreshed apart from its daily predictions."""
    sensors = [
        _canary_sensor(project),
        _drift_sensor(project, jobs["train"], jobs["drift_report"]),
        _live_metric_sensor(project, jobs["train"], jobs["live_metrics"]),
        _run_failure_sensor(project),
    ]
    if project.spec.segments is not None and project.spec.segments.discovered:
        sensors.append(_new_segment_sensor(project, jobs["train"]))
    if jobs.get("refresh") is not None:
        sensors.append(_score_refreshed_sensor(project, jobs["refresh"], jobs["predict"]))
    return sensors


def _score_refreshed_sensor(
    project: ModelProject, refresh_job: Any, predict_job: Any
) -> SensorDefinition:
    """Scores the days a successful refresh run of a segment was scheduled for, with the
    features it just wrote: the second half of a segmented model's daily predict tick."""
    name = project.name

    @run_status_sensor(
        name=score_refreshed_sensor_name(name),
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[refresh_job],
        request_job=predict_job,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"When a scheduled refresh of one of {name}'s segments succeeds, scores that "
            "segment's days it was scheduled for."
        ),
    )
    def score_refreshed(context: RunStatusSensorContext) -> SkipReason | list[RunRequest]:
        return _score_requests(project, context.dagster_run)

    return score_refreshed


def _score_requests(project: ModelProject, run: Any) -> SkipReason | list[RunRequest]:
    """The predictions runs (day x segment) a finished refresh run asks for, once each."""

    days = [day for day in run.tags.get(SCORE_DAYS_TAG, "").split(",") if day]
    segment = run.tags.get("dagster/partition")
    if not days or segment is None:
        return SkipReason(f"run {run.run_id[:8]} was not a scheduled refresh of one segment")
    return [
        RunRequest(
            run_key=f"{run.run_id}:{day}",
            partition_key=run_partition_key(project.spec, date.fromisoformat(day), segment),
            tags={"modelfactory/model": project.name, "modelfactory/trigger": "refresh"},
        )
        for day in days
    ]


def _new_segment_sensor(project: ModelProject, train_job: Any) -> SensorDefinition:
    name, by = project.name, project.spec.segments.by
    partitions = partitions_def(project.spec)

    @sensor(
        name=segment_sensor_name(name),
        job=train_job,
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Reads {name}'s raw data every 5 minutes; a value of {by!r} seen for the first "
            "time becomes a segment (a partition of every asset) and its first model trains."
        ),
    )
    def new_segment_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        known = set(partitions.get_partition_keys(dynamic_partitions_store=context.instance))
        new = [s for s in discover_segments(project) if s not in known]
        if not new:
            return SkipReason(f"no new values of {by!r} ({len(known)} segments)")
        return SensorResult(
            run_requests=[RunRequest(partition_key=s, run_key=f"first-{s}") for s in new],
            dynamic_partitions_requests=[partitions.build_add_request(new)],
        )

    return new_segment_sensor


def _canary_sensor(project: ModelProject) -> SensorDefinition:
    name, spec = project.name, project.spec
    canary = spec.serving.canary

    @sensor(
        name=canary_sensor_name(name),
        minimum_interval_seconds=canary.check_every_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=[AssetKey([name, "endpoint"]), AssetKey([name, "model_card"])],
        description=(
            f"Moves {name}'s rollout through {canary.steps}% once the new version has answered "
            f"{canary.min_requests} requests at a step, and rolls back when its error rate "
            f"exceeds {canary.max_error_rate:.1%}, its p95 latency "
            f"{canary.max_latency_ratio:g}x the stable version's, or (once labels arrived) its "
            f"live {spec.metric.name} is {spec.live_metric.tolerance:.0%} worse. After a "
            "rollback it refreshes the model card."
        ),
    )
    def canary_sensor(
        context: SensorEvaluationContext,
        model_registry: ModelRegistry,
        rollouts: RolloutStore,
        notifier: Notifier,
    ) -> SkipReason | SensorResult:
        found = [rollouts.active(segment_model(name, s)) for s in _segments(context, project)]
        active = [rollout for rollout in found if rollout is not None]
        if not active:  # most ticks: no label listing (an S3 call in production), no reads
            return SkipReason("no rollout in progress")
        live = LiveRule(
            labels=label_folder(name),
            target=spec.target,
            task=spec.task,
            metric=spec.metric.name,
            spec=spec.live_metric,
        )
        said, cards = [], []
        for rollout in active:  # each segment judged on its own traffic
            try:
                text, moved = _judge_rollout(
                    context, rollout, canary, live, model_registry, rollouts, notifier
                )
            except Exception as exc:  # one segment's trouble must not stop the others' judging
                context.log.exception(f"{rollout.model}: the canary step failed")
                text, moved = (
                    f"{rollout.model}: the canary step failed ({type(exc).__name__}: {exc})",
                    False,
                )
            said.append(text)
            if moved:  # the champion moved back: its card must say so
                cards.append(_card_refresh(name, rollout, text))
        if cards:
            context.log.info("; ".join(said))
            return SensorResult(run_requests=cards)
        return SkipReason("; ".join(said))

    return canary_sensor


def _card_refresh(model: str, rollout: Rollout, why: str) -> RunRequest:
    """A run of `<model>/model_card` (the rolled-back segment's) after a canary rollback."""

    return RunRequest(
        asset_selection=[AssetKey([model, "model_card"])],
        partition_key=split_unit(rollout.model)[1],
        run_key=f"card-after-rollout-{rollout.id}",
        tags={
            "modelfactory/model": model,
            "modelfactory/trigger": "canary_rollback",
            "modelfactory/reason": why[:1000],
        },
    )


def _judge_rollout(
    context: SensorEvaluationContext,
    rollout: Rollout,
    canary: Any,
    live: Any,
    registry: ModelRegistry,
    rollouts: RolloutStore,
    notifier: Notifier,
) -> tuple[str, bool]:
    """One step of an active rollout (of a model, or a segment): what happened, in a few
    words, and whether the champion moved (a rollback)."""

    unit = rollout.model
    model, segment = split_unit(unit)
    try:
        outcome = step(
            rollout,
            canary,
            warehouse=inference_store(unit),
            store=rollouts,
            registry=registry,
            notifier=notifier,
            live=live,
        )
    except WarehouseBusy:
        return f"{unit}: the warehouse is busy; judging on the next tick", False
    if outcome.rollout == rollout:
        return f"{unit}: {rollout.describe()}: {outcome.verdict.reason}", False
    context.instance.report_runless_asset_event(
        AssetObservation(
            asset_key=AssetKey([model, "endpoint"]),
            partition=segment,
            description=f"{outcome.verdict.action}: {outcome.verdict.reason}",
            metadata=outcome.rollout.as_metadata(),
        )
    )
    if outcome.move is not None:
        record_alias_move(outcome.move, context.instance)
    context.log.info(f"{unit}: {outcome.rollout.describe()} ({outcome.verdict.reason})")
    said = f"{unit}: {outcome.rollout.describe()}: {outcome.verdict.reason}"
    return said, outcome.move is not None


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
            f"more than {drift.max_share:.0%} of the columns drifted, retrains {name}"
            + (
                " (each segment on its own traffic, retraining only itself)."
                if project.spec.segments
                else "."
            )
        ),
    )
    def drift_sensor(
        context: SensorEvaluationContext, model_registry: ModelRegistry, notifier: Notifier
    ) -> SkipReason | list[RunRequest]:
        cursors = _Cursors(context.cursor, segmented=project.spec.segments is not None)
        outcomes = [
            _check_drift(
                context, project, segment, cursors, model_registry, notifier, train_job, report_job
            )
            for segment in _segments(context, project)
        ]
        cursors.save(context)
        return _combined(context, outcomes)

    return drift_sensor


def _check_drift(
    context: SensorEvaluationContext,
    project: ModelProject,
    segment: str | None,
    cursors: _Cursors,
    registry: ModelRegistry,
    notifier: Notifier,
    train_job: Any,
    report_job: Any,
) -> str | list[RunRequest]:
    """Judge the window of new requests of the model (or one segment): a message, or the
    retrain and report runs to request."""
    from datetime import datetime

    name, drift = project.name, project.spec.drift
    unit = segment_model(name, segment)
    said = _speaker(unit, segment)
    # The window first: most ticks end here, before any registry or artifact I/O.
    cursor = cursors.get(segment)
    after = datetime.fromisoformat(cursor) if cursor else None
    try:
        window, first, last = read_window(
            inference_store(unit), unit, after=after, limit=drift.window
        )
    except WarehouseBusy:
        return said(f"{name}'s warehouse is busy; reading on the next tick")
    if len(window) < drift.window:
        return said(f"{len(window)}/{drift.window} new rows since the last check")
    if _in_flight(context, train_job.name, segment):  # judged after it, against its champion
        return said(f"a retrain of {unit} is under way; judging the window after it")
    champion = registry.champion(unit)
    if champion is None:
        return said(f"{unit} has no champion to compare live data with")
    reference = registry.reference_profile(unit, champion.version)
    if reference is None:
        return said(f"champion v{champion.version} was logged without a reference")

    result = compare(reference, window, drift)
    cursors.set(segment, last.isoformat())  # judged: never read again
    context.instance.report_runless_asset_event(
        AssetObservation(  # every judged window, drifted or not: the UI plots the share
            asset_key=AssetKey([name, "drift_report"]),
            partition=segment,
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
        return said(result.describe())
    notifier.send(
        Alert(
            model=unit,
            event="drift_retrain",
            text=f"retraining: {result.describe()}",
            severity="warning",
            links=_evidence_links(registry, unit, champion.version, "drift_report"),
        )
    )
    # One retrain (and one report) per judged window, however often it is evaluated.
    return _retrain_requests(
        run_key=f"drift:{unit}:{first.isoformat()}:{last.isoformat()}",
        jobs={"": train_job, "report": report_job},
        segment=segment,
        tags={
            "modelfactory/model": name,
            "modelfactory/trigger": "drift",
            "modelfactory/drift_share": f"{result.share:.3f}",
            "modelfactory/drifted_columns": ",".join(result.drifted_columns),
            CHAMPION_TAG: champion.version,
            DRIFT_WINDOW_TAG: cursor or "",
        },
    )


def _retrain_requests(
    *, run_key: str, jobs: dict[str, Any], segment: str | None, tags: dict[str, str]
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


class _Cursors:
    """A sensor's cursor per segment: a plain string for an unsegmented model (as it always
    was), a JSON object of segment -> cursor for a segmented one."""

    def __init__(self, raw: str | None, *, segmented: bool) -> None:
        import json

        self.segmented = segmented
        self.values: dict[str | None, str] = {}
        if segmented:
            try:  # a cursor from before the model had segments starts afresh
                found = json.loads(raw or "{}")
            except ValueError:
                found = None
            self.values = found if isinstance(found, dict) else {}
        elif raw and not raw.startswith("{"):  # nor one from when it had them
            self.values = {None: raw}
        self.changed = False

    def get(self, segment: str | None) -> str | None:
        return self.values.get(segment)

    def set(self, segment: str | None, value: str) -> None:
        self.changed = self.changed or self.values.get(segment) != value
        self.values[segment] = value

    def save(self, context: SensorEvaluationContext) -> None:
        import json

        if self.changed:
            context.update_cursor(
                json.dumps(self.values, sort_keys=True) if self.segmented else self.values[None]
            )


def _segments(context: SensorEvaluationContext, project: ModelProject) -> list[str | None]:
    """The segments to judge one by one, or [None] for an unsegmented model."""

    return each_segment(project.spec, context.instance)


def _speaker(unit: str, segment: str | None) -> Callable[[str], str]:
    """Messages name the segment they are about; an unsegmented model's stay as they were."""
    return (lambda message: f"{unit}: {message}") if segment else (lambda message: message)


def _combined(
    context: SensorEvaluationContext, outcomes: list[str | list[RunRequest]]
) -> SkipReason | list[RunRequest]:
    """The runs any segment asked for, or every segment's reason to ask for none. With runs
    to request, the other segments' reasons go to the tick's log, so none is lost."""
    requests = [r for outcome in outcomes if isinstance(outcome, list) for r in outcome]
    if requests:
        for said in (o for o in outcomes if isinstance(o, str)):
            context.log.info(said)
        return requests
    return SkipReason("; ".join(o for o in outcomes if isinstance(o, str)))


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
    from dagster import DagsterRunStatus, RunsFilter

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


def _live_metric_sensor(project: ModelProject, train_job: Any, live_job: Any) -> SensorDefinition:
    name = project.name
    spec = project.spec
    live_spec, metric = spec.live_metric, spec.metric.name

    @sensor(
        name=live_metric_sensor_name(name),
        jobs=[train_job, live_job],
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"When new label files arrive, joins them with the champion's captured "
            f"predictions; when its live {metric} is more than {live_spec.tolerance:.0%} "
            f"worse than on the holdout (at least {live_spec.min_labels} labelled rows), "
            f"retrains {name}."
        ),
    )
    def live_metric_sensor(
        context: SensorEvaluationContext, model_registry: ModelRegistry, notifier: Notifier
    ) -> SkipReason | list[RunRequest]:
        folder = label_folder(name)  # one folder per model; rows join their segment's log
        labels = find_labels(folder)  # listing only: most ticks end here
        if not labels.files:
            return SkipReason(f"no label files in {folder} yet")
        cursors = _Cursors(context.cursor, segmented=spec.segments is not None)
        outcomes = [
            _check_live_metric(
                context, project, segment, labels, cursors, model_registry, notifier, jobs
            )
            for segment in _segments(context, project)
        ]
        cursors.save(context)
        return _combined(context, outcomes)

    jobs = (train_job, live_job)
    return live_metric_sensor


def _check_live_metric(
    context: SensorEvaluationContext,
    project: ModelProject,
    segment: str | None,
    labels: Any,
    cursors: _Cursors,
    registry: ModelRegistry,
    notifier: Notifier,
    jobs: tuple[Any, Any],
) -> str | list[RunRequest]:
    """Judge the champion of the model (or one segment) on the labelled rows: a message, or
    the retrain and live-metrics runs to request."""

    name, spec = project.name, project.spec
    live_spec, metric = spec.live_metric, spec.metric.name
    train_job, live_job = jobs
    unit = segment_model(name, segment)
    said = _speaker(unit, segment)
    # cursor: "<label files judged>|<champion a retrain was already requested for>"
    judged, _, retrained = (cursors.get(segment) or "").partition("|")
    if labels.fingerprint == judged:
        return said("no new labels since the last check")
    if _in_flight(context, train_job.name, segment):
        return said(f"a retrain of {unit} is under way; judging the labels after it")
    champion = registry.champion(unit)
    if champion is None:
        return said(f"{unit} has no champion to judge")
    try:
        labelled = read_labelled(
            inference_store(unit), unit, labels.files, target=spec.target, limit=live_spec.window
        )
        verdict = judge(  # a label none of the model's classes is a LabelsError too
            labelled,
            version=champion.version,
            task=spec.task,
            metric=metric,
            holdout=champion_holdout(champion.tags, metric),
            spec=live_spec,
        )
    except WarehouseBusy:
        return said(f"{name}'s warehouse is busy; reading on the next tick")
    except LabelsError as exc:  # said once per set of files, then waits for a fix
        cursors.set(segment, f"{labels.fingerprint}|{retrained}")
        notifier.send(Alert(model=unit, event="labels_unreadable", text=str(exc)))
        return said(str(exc))
    if verdict.live is not None:
        context.instance.report_runless_asset_event(
            AssetObservation(  # the UI plots the live metric over time
                asset_key=AssetKey([name, "live_metrics"]),
                partition=segment,
                description=f"live check: {verdict.describe()}",
                metadata={
                    f"live_{metric}": verdict.live,
                    "labelled_rows": verdict.rows,
                    "champion_version": champion.version,
                    "verdict": "degraded" if verdict.degraded else "ok",
                },
            )
        )
    if not verdict.degraded or retrained == champion.version:
        cursors.set(segment, f"{labels.fingerprint}|{retrained}")  # judged: not read again
        if verdict.degraded:  # one retrain per champion: then the schedule's, or a new one's
            return said(f"{verdict.describe()}; its retrain was requested already")
        return said(verdict.describe())
    cursors.set(segment, f"{labels.fingerprint}|{champion.version}")
    notifier.send(
        Alert(
            model=unit,
            event="live_metric_retrain",
            text=f"retraining: {verdict.describe()}",
            severity="warning",
            links=_evidence_links(registry, unit, champion.version, "live_metrics"),
        )
    )
    # One retrain per degraded champion, however often it is evaluated.
    return _retrain_requests(
        run_key=f"live:{unit}:v{champion.version}",
        jobs={"": train_job, "metrics": live_job},
        segment=segment,
        tags={
            "modelfactory/model": name,
            "modelfactory/trigger": "live_metric",
            f"modelfactory/live_{metric}": f"{verdict.live:.6g}",
            f"modelfactory/holdout_{metric}": f"{verdict.holdout:.6g}",
            CHAMPION_TAG: champion.version,
        },
    )


def run_failure_sensor_name(model: str) -> str:
    return f"{model}_run_failures"


def _run_failure_sensor(project: ModelProject) -> SensorDefinition:
    """On call hears of every failed run, bad data included: a blocking check that fails at
    ERROR severity fails its run, so it arrives here too. Without `monitored_jobs` it watches
    every job of the code location (one model), materializations from the UI included."""
    name = project.name

    @run_failure_sensor(
        name=run_failure_sensor_name(name),
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Announces every failed run of {name}, from its jobs or the UI (failed blocking "
            "checks included): "
            "the failing steps and checks, the error, and a link to the run."
        ),
    )
    def run_failures(context: RunFailureSensorContext, notifier: Notifier) -> None:
        run = context.dagster_run
        notifier.send(
            Alert(
                model=name,
                event="run_failed",
                text=describe_run_failure(context),
                severity="error",
                links={"run": dagster_run_url(run.run_id)},
            )
        )

    return run_failures


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
