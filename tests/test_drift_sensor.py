"""The drift sensor on real parts: captured requests in DuckDB, the champion's reference in
MLflow, the sensor evaluated through Dagster's sensor context as the daemon would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason, build_sensor_context
from pydantic_core import to_json

from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.resources import project_resources
from modelfactory.orchestration.runs import seed_data, train
from modelfactory.orchestration.sensors import (
    CHAMPION_TAG,
    DRIFT_SENSOR,
    DRIFT_WINDOW_TAG,
    unit_cursor,
)
from modelfactory.project.loader import load_project
from modelfactory.serving.capture import CaptureFlusher, CaptureSpool
from modelfactory.stores.home import local_home
from modelfactory.stores.notify import read_alerts

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
    sensor = build_definitions(project).resolve_sensor_def(DRIFT_SENSOR)
    context = build_sensor_context(
        instance=DagsterInstance.get(), resources=project_resources(MODEL), cursor=cursor
    )
    return sensor(context), context.cursor


def report_on(project, tags: dict[str, str]):
    """Run `<model>_drift_report` as the sensor requests it; its report's verdict read back
    from the report's own JSON, the asset's metadata, and the model card after it."""
    import json

    from modelfactory.ml.monitoring import report_verdict

    job = build_definitions(project).resolve_job_def(f"{MODEL}_drift_report")
    result = job.execute_in_process(instance=DagsterInstance.get(), tags=tags)
    (materialization,) = result.asset_materializations_for_node(f"{MODEL}__drift_report")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    html = Path(metadata["report"])
    verdict = report_verdict(json.loads(html.with_suffix(".json").read_text()))
    (card,) = result.asset_materializations_for_node(f"{MODEL}__model_card")
    return metadata, verdict, html.read_text(), card.metadata["card"].value


def observed_verdict() -> tuple[list[str], float]:
    """What the sensor recorded of the window it judged last: drifted columns and share."""
    (observed,) = (
        DagsterInstance.get().fetch_observations(AssetKey([MODEL, "drift_report"]), limit=1).records
    )
    metadata = observed.asset_observation.metadata
    columns = metadata["drifted_columns"].value
    return ([] if columns == "none" else columns.split(", ")), metadata["drift_share"].value


def promote_a_champion_trained_on_the_drifted_inputs(project) -> None:
    """v2, promoted while a report of v1's verdict waits to run: the champion's model with
    a reference profile of the drifted inputs, against which nothing drifted."""
    from modelfactory.ml.monitoring import profile
    from modelfactory.stores.home import model_registry

    registry = model_registry()
    simulate = project.module("simulate").simulate
    build = project.function("features", "build_features")
    drifted = build(simulate(seed=12, drift=0.5)).drop(columns=["date", "units_sold"])
    logged = registry.log_candidate(
        model=MODEL,
        estimator=registry.load(MODEL, "1"),
        X_sample=drifted.head(20),
        params={},
        metrics={},
        tags={},
        reference_profile=profile(drifted).to_json(),
    )
    registry.promote(MODEL, logged.version, expected_current="1", actor="test", reason="retrain")
    assert registry.champion(MODEL).version == "2"


def test_no_drift_requests_nothing_and_drift_requests_one_retrain(project) -> None:
    result, cursor = tick(project)
    assert isinstance(result, SkipReason) and f"0/{WINDOW} new rows" in result.skip_message

    capture_traffic(project, drift=0.0, seed=11)
    calm, cursor = tick(project)
    assert isinstance(calm, SkipReason) and "no drift in 5 columns" in calm.skip_message
    assert unit_cursor(cursor, MODEL) is not None  # the judged window is never read again
    assert observed_verdict() == ([], 0.0)
    again, same_cursor = tick(project, cursor)
    assert f"0/{WINDOW} new rows" in again.skip_message
    assert unit_cursor(same_cursor, MODEL) == unit_cursor(cursor, MODEL)

    # The report on that (first) window says what the sensor said: no column, no drift.
    metadata, verdict, _, card = report_on(project, {DRIFT_WINDOW_TAG: ""})
    assert (verdict.drifted_columns, verdict.drifted) == ([], False)
    assert metadata["drifted_columns"] == "none" and metadata["verdict"] == "no drift"
    assert f"- **Drift:** {metadata['summary']}" in card  # the card refreshed with it

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
    # the window after the calm one, the model's own in the sensor's cursor
    assert retrain.tags[DRIFT_WINDOW_TAG] == unit_cursor(cursor, MODEL)
    assert any(a.event == "drift_retrain" for a in read_alerts(local_home().alerts_log))
    flagged, share = observed_verdict()

    capture_traffic(project, drift=0.0, seed=13)  # newer calm traffic: the report still
    promote_a_champion_trained_on_the_drifted_inputs(project)  # and a parallel retrain's
    report = next(r for r in requests if r.job_name == f"{MODEL}_drift_report")  # judges
    metadata, verdict, html, card = report_on(project, report.tags)  # the sensor's window
    assert report.tags[CHAMPION_TAG] == metadata["champion_version"] == "1"  # and champion
    assert metadata["reference_rows_from"].startswith("v1's training snapshot ")
    assert sorted(verdict.drifted_columns) == sorted(flagged) == ["price", "temperature"]
    assert verdict.drifted and verdict.share == pytest.approx(share) == pytest.approx(0.4)
    assert metadata["drift_share"] == pytest.approx(0.4) and metadata["drifted"] is True
    assert (metadata["method"], metadata["threshold"], metadata["max_share"]) == ("psi", 0.2, 0.3)
    assert "Share of Drifted Columns: Less or Equal 0.300" in html  # max_share, as configured
    assert "psi (Model Factory, champion's reference profile)" in html
    assert "- **Drift:** 2/5 columns drifted (40%, limit 30%)" in card


def test_the_drift_report_without_traffic_says_so_and_succeeds(project) -> None:
    report = build_definitions(project).resolve_job_def(f"{MODEL}_drift_report")
    result = report.execute_in_process(instance=DagsterInstance.get(), raise_on_error=False)
    assert result.success
    (materialization,) = result.asset_materializations_for_node(f"{MODEL}__drift_report")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["verdict"] == "nothing to judge yet"
    assert "no captured requests in demand_forecast_inference_log" in metadata["summary"]
    (card,) = result.asset_materializations_for_node(f"{MODEL}__model_card")
    assert "- **Drift:** not known yet (demand_forecast: no captured" in card.metadata["card"].value
