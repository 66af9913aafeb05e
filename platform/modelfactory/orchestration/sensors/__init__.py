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
reported on the model's assets, so the UI's event history tells the story. One module per
concern: names, tick (the cursor and per-unit loop), retrain, drift, live_metric, canary,
new_segments, score_refreshed, run_failures.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import SensorDefinition

from modelfactory.orchestration.sensors.canary import build_canary_sensor
from modelfactory.orchestration.sensors.drift import build_drift_sensor
from modelfactory.orchestration.sensors.live_metric import build_live_metric_sensor
from modelfactory.orchestration.sensors.names import (
    CANARY_SENSOR,
    CHAMPION_TAG,
    DRIFT_SENSOR,
    DRIFT_WINDOW_TAG,
    LIVE_METRIC_SENSOR,
    NEW_SEGMENTS_SENSOR,
    RUN_FAILURES_SENSOR,
    SCORE_REFRESHED_SENSOR,
)
from modelfactory.orchestration.sensors.new_segments import build_new_segment_sensor
from modelfactory.orchestration.sensors.run_failures import (
    build_run_failure_sensor,
    describe_run_failure,
    model_of_run,
)
from modelfactory.orchestration.sensors.score_refreshed import build_score_refreshed_sensor
from modelfactory.orchestration.sensors.tick import (
    FleetModel,
    Jobs,
    SensorCursor,
    discovers_segments,
    unit_cursor,
)
from modelfactory.project.loader import ModelProject

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


def build_sensors(models: Sequence[tuple[ModelProject, Jobs]]) -> list[SensorDefinition]:
    """The location's sensors, one per concern, over every model in `models` (each with its
    jobs by role, as build_definitions makes them). A concern no model has gets no sensor."""
    fleet = [FleetModel(project, jobs) for project, jobs in models]
    sensors = [build_run_failure_sensor(fleet)]
    if not fleet:
        return sensors
    sensors += [
        build_canary_sensor(fleet),
        build_drift_sensor(fleet),
        build_live_metric_sensor(fleet),
    ]
    discovered = [m for m in fleet if discovers_segments(m.project)]
    if discovered:
        sensors.append(build_new_segment_sensor(discovered))
    refreshed = [m for m in fleet if m.jobs.get("refresh") is not None]
    if refreshed:
        sensors.append(build_score_refreshed_sensor(refreshed))
    return sensors
