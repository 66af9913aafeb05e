"""The cursor and the per-unit loop every sensor of the location shares.

A sensor judges many units (`<model>` or `<model>.<segment>`) per tick: one JSON cursor
holds each unit's own cursor, and one unit's error is logged and alerted once while the
others are judged all the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dagster import (
    DagsterRunStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
)

from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import segment_model
from modelfactory.stores.instance import each_segment
from modelfactory.stores.notify import Alert, Notifier

Jobs = Mapping[str, JobDefinition | None]

Outcome = str | list[RunRequest]  # what judging one unit decided: words, or runs to request


@dataclass(frozen=True)
class FleetModel:
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
class Tick:
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


def combined(context: SensorEvaluationContext, outcomes: list[Outcome]) -> SkipReason | list:
    """The runs any unit asked for, or every unit's reason to ask for none. With runs to
    request, the other units' reasons go to the tick's log, so none is lost."""
    requests = [r for outcome in outcomes if isinstance(outcome, list) for r in outcome]
    if requests:
        for said in (o for o in outcomes if isinstance(o, str)):
            context.log.info(said)
        return requests
    return SkipReason("; ".join(o for o in outcomes if isinstance(o, str)))


def segments_to_judge(context: SensorEvaluationContext, project: ModelProject) -> list[str | None]:
    """The segments to judge one by one, or [None] for an unsegmented model."""

    return each_segment(project.spec, context.instance)


def discovers_segments(project: ModelProject) -> bool:
    segments = project.spec.segments
    return segments is not None and segments.discovered


def all_jobs(models: Sequence[FleetModel], *roles: str) -> list[JobDefinition]:
    return [model.job(role) for model in models for role in roles]


def unit_of(model: FleetModel, segment: str | None) -> str:

    return segment_model(model.name, segment)


def listed(models: Sequence[FleetModel]) -> str:
    """The models a sensor judges, for its description in the UI."""
    names = [m.name for m in models]
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return f"{len(names)} model{'s' if len(names) != 1 else ''}: {shown}."


def in_flight(context: SensorEvaluationContext, job_name: str, segment: str | None = None) -> bool:
    """Is a run of the job (for this segment) queued or running? Then a second retrain
    would only repeat it."""
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
