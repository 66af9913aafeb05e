"""`modelfactory_run_failures`: announce every failed run of the location, naming its model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dagster import (
    DagsterEventType,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorDefinition,
    run_failure_sensor,
)

from modelfactory.orchestration.run_tags import MODEL_TAG
from modelfactory.orchestration.sensors.names import RUN_FAILURES_SENSOR
from modelfactory.orchestration.sensors.tick import FleetModel, listed
from modelfactory.stores.notify import Alert, Notifier
from modelfactory.stores.urls import dagster_run_url


def build_run_failure_sensor(models: list[FleetModel]) -> SensorDefinition:
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
            "error, and a link to the run. Watches " + (listed(models) if models else "no model.")
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
    parts = []
    while error is not None:
        paragraph = error.message.strip().split("\n\n")[0]  # not the stack or query dumps
        text = " ".join(line.strip() for line in paragraph.splitlines())
        parts.append(re.sub(r"^[\w.]+\.(\w+: )", r"\1", text).rstrip(":"))
        error = error.cause
    return "; caused by ".join(part for part in parts if part)
