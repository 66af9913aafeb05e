"""The drift sensor on real parts: captured requests in DuckDB, the champion's reference in
MLflow, the sensor evaluated through Dagster's sensor context as the daemon would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason, build_sensor_context
from pydantic_core import to_json

from modelfactory.assets import build_definitions
from modelfactory.notify import read_alerts
from modelfactory.project import load_project
from modelfactory.resources import local_home, project_resources
from modelfactory.runs import seed_data, train
from modelfactory.serving.capture import CaptureFlusher, CaptureSpool

pytestmark = pytest.mark.slow
MODEL = "demand_forecast"
WINDOW = 300


@pytest.fixture
def project(copy_example):
    root = copy_example(
        MODEL, edit=lambda spec: spec["drift"].update(window=WINDOW), segments=False
    )
    project = load_project(root)
    seed_data(project)
    assert train(project, instance=DagsterInstance.get()).promoted
    return project


def capture_traffic(project, *, drift: float, seed: int, rows: int = WINDOW) -> None:
    """Requests as the endpoint captures them, with inputs drawn from the simulator."""
    simulate = project.module("simulate").simulate
    build = project.function("features", "build_features")
    inputs = build(simulate(seed=seed, drift=drift)).drop(columns=["date", "units_sold"])
    records = inputs.sample(rows, random_state=seed).to_dict("records")
    home = local_home()
    spool = CaptureSpool(home.capture(MODEL))
    for start in range(0, rows, 50):
        batch = records[start : start + 50]
        spool.append(
            to_json(
                {
                    "request_id": uuid.uuid4().hex,
                    "received_at": datetime.now(UTC).replace(tzinfo=None).isoformat(),
                    "model_version": "1",
                    "role": "stable",
                    "status": "ok",
                    "error": None,
                    "latency_ms": 2.0,
                    "inputs": batch,
                    "outputs": [40.0] * len(batch),
                    "scores": None,
                }
            )
        )
    spool.close()
    CaptureFlusher(MODEL, spool, home.warehouse(MODEL)).flush()


def tick(project, cursor: str | None = None):
    sensor = build_definitions(project).resolve_sensor_def(f"{MODEL}_drift")
    context = build_sensor_context(
        instance=DagsterInstance.get(), resources=project_resources(MODEL), cursor=cursor
    )
    return sensor(context), context.cursor


def test_no_drift_requests_nothing_and_drift_requests_one_retrain(project) -> None:
    result, cursor = tick(project)
    assert isinstance(result, SkipReason) and f"0/{WINDOW} new rows" in result.skip_message

    capture_traffic(project, drift=0.0, seed=11)
    calm, cursor = tick(project)
    assert isinstance(calm, SkipReason) and "no drift in 5 columns" in calm.skip_message
    assert cursor is not None  # the judged window is never read again
    (observed,) = (
        DagsterInstance.get().fetch_observations(AssetKey([MODEL, "drift_report"]), limit=1).records
    )
    assert observed.asset_observation.metadata["drift_share"].value == 0.0
    again, same_cursor = tick(project, cursor)
    assert f"0/{WINDOW} new rows" in again.skip_message and same_cursor == cursor

    capture_traffic(project, drift=0.5, seed=12)
    ticks = [tick(project, cursor)[0] for _ in range(100)]  # the same window, 100 ticks
    requests = [request for requested in ticks for request in requested]
    assert all(isinstance(r, RunRequest) for r in requests)
    # Dagster launches a run_key once: one retrain and one report, however many ticks
    assert {(r.job_name, r.run_key.endswith(":report")) for r in requests} == {
        (f"{MODEL}_train", False),
        (f"{MODEL}_drift_report", True),
    }
    assert len({r.run_key for r in requests}) == 2
    retrain = requests[0]
    assert retrain.tags["modelfactory/trigger"] == "drift"
    assert set(retrain.tags["modelfactory/drifted_columns"].split(",")) == {"price", "temperature"}
    assert any(a.event == "drift_retrain" for a in read_alerts(local_home().alerts_log))

    report = build_definitions(project).resolve_job_def(f"{MODEL}_drift_report")
    result = report.execute_in_process(instance=DagsterInstance.get())
    (materialization,) = result.asset_materializations_for_node(f"{MODEL}__drift_report")
    metadata = materialization.metadata
    assert metadata["drift_share"].value == pytest.approx(0.4)  # price and temperature of 5
    html = Path(metadata["report"].value)
    text = html.read_text()
    assert "Drifted Columns" in text and "temperature" in text  # Evidently's drift summary


def test_the_drift_report_without_traffic_says_what_is_missing(project) -> None:
    report = build_definitions(project).resolve_job_def(f"{MODEL}_drift_report")
    result = report.execute_in_process(instance=DagsterInstance.get(), raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert "no captured requests in demand_forecast_inference_log" in str(
        failure.event_specific_data.error.message
    )
