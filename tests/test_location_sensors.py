"""One sensor per concern for a location of many models: each tick judges every model, a
model's trouble is its own, and a run request goes to the right model's job.

Real parts: the models' own jobs, a real Dagster instance, DuckDB files and the rollout
table in the test's home; the sensors evaluated through Dagster's sensor context."""

from __future__ import annotations

import uuid

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRun, SkipReason, build_sensor_context

from modelfactory.orchestration.assets import (
    drift_report_job_name,
    live_metrics_job_name,
    predict_job_name,
    refresh_job_name,
    train_job_name,
)
from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.resources import project_resources
from modelfactory.orchestration.sensors import (
    CANARY_SENSOR,
    DRIFT_SENSOR,
    LIVE_METRIC_SENSOR,
    RUN_FAILURES_SENSOR,
    SCORE_REFRESHED_SENSOR,
    build_sensors,
    model_of_run,
    unit_cursor,
)
from modelfactory.project.loader import ModelProject, load_project
from modelfactory.stores.home import local_home, rollout_store
from modelfactory.stores.notify import read_alerts

WINDOW = 50


def jobs_of(project: ModelProject) -> dict:
    """The model's jobs by role, as build_definitions makes them."""
    defs = build_definitions(project)
    names = {j.name for j in defs.resolve_all_job_defs()}
    named = {
        "train": train_job_name,
        "predict": predict_job_name,
        "drift_report": drift_report_job_name,
        "live_metrics": live_metrics_job_name,
        "refresh": refresh_job_name,
    }
    return {
        role: defs.resolve_job_def(name(project.name)) if name(project.name) in names else None
        for role, name in named.items()
    }


@pytest.fixture
def fleet(copy_example) -> list[ModelProject]:
    """Three models in one location: two unsegmented copies and a segmented one."""
    window = {"drift": {"window": WINDOW}}
    return [
        load_project(copy_example("breast_cancer", "alpha", lambda s: s.update(window))),
        load_project(copy_example("breast_cancer", "beta", lambda s: s.update(window))),
        load_project(copy_example("demand_forecast", "gamma", lambda s: s.update(window))),
    ]


def evaluate(sensors: list, name: str, cursor: str | None = None):
    (found,) = [s for s in sensors if s.name == name]
    context = build_sensor_context(
        instance=DagsterInstance.get(), resources=project_resources("alpha"), cursor=cursor
    )
    return found(context), context.cursor


def test_one_sensor_per_concern_whatever_the_number_of_models(fleet) -> None:
    sensors = build_sensors([(p, jobs_of(p)) for p in fleet])
    every = [CANARY_SENSOR, DRIFT_SENSOR, LIVE_METRIC_SENSOR, RUN_FAILURES_SENSOR]
    refresh = [SCORE_REFRESHED_SENSOR]  # gamma refreshes its segments apart from predicting
    assert sorted(s.name for s in sensors) == sorted(every + refresh)
    (drift,) = [s for s in sensors if s.name == DRIFT_SENSOR]
    assert {j.name for j in drift.jobs} == {
        f"{m}_{job}" for m in ("alpha", "beta", "gamma") for job in ("train", "drift_report")
    }
    result, cursor = evaluate(sensors, DRIFT_SENSOR)
    said = result.skip_message
    units = ("alpha", "beta", "gamma.uk", "gamma.de", "gamma.us")
    for unit in units:
        assert f"{unit}: 0/{WINDOW} new rows since the last check" in said, said
    assert all(unit_cursor(cursor, unit) is None for unit in units)  # nothing judged


def test_one_models_error_is_its_own_and_alerted_once(fleet) -> None:
    sensors = build_sensors([(p, jobs_of(p)) for p in fleet])
    broken = local_home().ensure().warehouse("beta")
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"this is no DuckDB file" * 100)

    result, cursor = evaluate(sensors, DRIFT_SENSOR)
    said = result.skip_message
    assert "beta: the drift check failed (" in said, said
    assert f"alpha: 0/{WINDOW} new rows" in said and f"gamma.de: 0/{WINDOW} new rows" in said
    again, cursor = evaluate(sensors, DRIFT_SENSOR, cursor)
    assert "beta: the drift check failed (" in again.skip_message
    failed = [a for a in read_alerts(local_home().alerts_log) if a.event == "sensor_failed"]
    assert [(a.model, a.severity) for a in failed] == [("beta", "error")]  # once, not per tick

    broken.unlink()
    mended, cursor = evaluate(sensors, DRIFT_SENSOR, cursor)
    assert f"beta: 0/{WINDOW} new rows" in mended.skip_message
    assert cursor is not None and "failing" not in cursor  # forgotten: a new failure alerts


def test_a_store_nothing_wrote_to_is_not_opened_again(fleet) -> None:
    import os

    sensors = build_sensors([(p, jobs_of(p)) for p in fleet[:1]])
    _, cursor = evaluate(sensors, DRIFT_SENSOR)  # the count made the file: its token changed
    _, cursor = evaluate(sensors, DRIFT_SENSOR, cursor)  # counted: the token in the cursor
    warehouse = local_home().warehouse("alpha")
    was = warehouse.stat()
    warehouse.write_bytes(b"x" * was.st_size)  # unreadable now, with the same size and time
    os.utime(warehouse, ns=(was.st_atime_ns, was.st_mtime_ns))
    rest, cursor = evaluate(sensors, DRIFT_SENSOR, cursor)
    assert rest.skip_message == f"0/{WINDOW} new rows since the last check"  # not opened

    os.utime(warehouse, ns=(was.st_atime_ns, was.st_mtime_ns + 1))  # as a write would
    changed, _ = evaluate(sensors, DRIFT_SENSOR, cursor)
    assert changed.skip_message.startswith("alpha: the drift check failed (")  # opened


def test_the_canary_judges_every_models_rollout_in_one_read(fleet) -> None:
    sensors = build_sensors([(p, jobs_of(p)) for p in fleet])
    assert evaluate(sensors, CANARY_SENSOR)[0].skip_message == "no rollout in progress"
    store = rollout_store()
    for unit in ("alpha", "gamma.uk", "gamma.zz", "nobody"):  # zz: no segment of gamma's
        spec = fleet[0].spec.serving.canary
        store.reserve(unit, stable="1", canary="2", spec=spec, reason="test")

    result, cursor = evaluate(sensors, CANARY_SENSOR)
    said = result.skip_message
    assert isinstance(result, SkipReason)
    assert "alpha: " in said and "gamma.uk: " in said, said
    assert "gamma.zz" not in said and "nobody" not in said  # not units of this location
    assert unit_cursor(cursor, "alpha") is None  # the canary keeps only when it judged
    # Judged a moment ago: not again before each model's check_every_seconds.
    soon, _ = evaluate(sensors, CANARY_SENSOR, cursor)
    assert soon.skip_message == "no rollout due for judging yet"


def test_a_failed_run_is_told_as_its_models() -> None:
    names = ["alpha", "beta"]

    def run(job: str, **kwargs) -> DagsterRun:
        return DagsterRun(job_name=job, run_id=uuid.uuid4().hex, **kwargs)

    assert model_of_run(run("beta_train", tags={"modelfactory/model": "beta"}), names) == "beta"
    from_ui = run("__ASSET_JOB", asset_selection=frozenset({AssetKey(["beta", "raw"])}))
    assert model_of_run(from_ui, names) == "beta"
    assert model_of_run(run("alpha_predict"), names) == "alpha"
    assert model_of_run(run("somebody_elses"), names) == "unknown"
    assert model_of_run(run("somebody_elses"), ["alpha"]) == "alpha"  # a location of one
