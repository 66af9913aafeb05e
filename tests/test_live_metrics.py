"""Late labels close the loop, on real parts: the endpoint answers simulated traffic over HTTP,
its capture lands in DuckDB, labels arrive later as files, the live-metric sensor is evaluated
through Dagster's sensor context, and the retrain it requests runs against MLflow.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason

from conftest import LiveServer
from modelfactory.cli.demo import (
    run_requested,
    send_traffic,
    simulated_features,
    tick,
    wait_until_captured,
    write_labels,
)
from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.runs import seed_data, train
from modelfactory.orchestration.sensors import LIVE_METRIC_SENSOR
from modelfactory.project.loader import load_project
from modelfactory.serving import create_app
from modelfactory.serving.app import ServingSettings
from modelfactory.stores.home import local_home, model_registry, rollout_store
from modelfactory.stores.inference_reader import read_labelled
from modelfactory.stores.notify import read_alerts

pytestmark = pytest.mark.slow
MODEL = "demand_forecast"
SENSOR = LIVE_METRIC_SENSOR
ROWS = 600


@pytest.fixture
def project(copy_example):
    root = copy_example(
        MODEL,
        edit=lambda spec: spec.update(live_metric={"min_labels": 200, "window": 500}),
        segments=False,
    )
    project = load_project(root)
    seed_data(project)
    assert train(project, instance=DagsterInstance.get()).promoted
    return project


def serve_and_label(project, features, labels_name: str, already: int = 0) -> None:
    """Send the features' inputs to the real endpoint; their labels arrive after capture."""
    app = create_app(
        [project],
        registry=model_registry(),
        rollouts=rollout_store(),
        home=local_home(),
        settings=ServingSettings(refresh_seconds=0.1, flush_seconds=0.2),
    )
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        answered = send_traffic(client, project, features)
        wait_until_captured(project, already + len(answered))
    write_labels(project, answered, labels_name)


def test_a_live_metric_drop_retrains_once_and_alerts_and_the_better_model_wins(project) -> None:
    instance = DagsterInstance.get()
    result, cursor = tick(project, SENSOR, instance)
    assert isinstance(result, SkipReason) and "no label files" in result.skip_message

    ordinary = simulated_features(project, n_days=10, start="2026-05-01", seed=5).head(ROWS)
    serve_and_label(project, ordinary, "ordinary")
    result, cursor = tick(project, SENSOR, instance)
    assert isinstance(result, SkipReason)
    assert "live mae" in result.skip_message and "tolerance 25%" in result.skip_message
    (observed,) = instance.fetch_observations(AssetKey([MODEL, "live_metrics"]), limit=1).records
    live_mae = observed.asset_observation.metadata["live_mae"].value
    assert 1.5 < live_mae < 3.5  # the simulator's noise (sd 3) gives an mae near 2.4
    assert tick(project, SENSOR, instance, cursor)[0].skip_message == (
        "no new labels since the last check"
    )

    knobs = {"n_days": 90, "start": "2026-05-11", "seed": 6, "drift": 0.2, "concept": 0.3}
    project.module("simulate").new_batch(local_home().data(MODEL), "sales-changed", **knobs)
    changed = simulated_features(project, **knobs).sample(ROWS, random_state=1)
    serve_and_label(project, changed, "changed", already=ROWS)

    ticks = [tick(project, SENSOR, instance, cursor)[0] for _ in range(100)]
    _, after = tick(project, SENSOR, instance, cursor)
    requests = [request for requested in ticks for request in requested]
    assert all(isinstance(r, RunRequest) for r in requests)
    # Dagster launches a run_key once: one retrain and one live-metrics run, however many ticks
    assert {r.job_name for r in requests} == {f"{MODEL}_train", f"{MODEL}_live_metrics"}
    assert len({r.run_key for r in requests}) == 2
    retrain = next(r for r in requests if r.job_name == f"{MODEL}_train")
    assert retrain.tags["modelfactory/trigger"] == "live_metric"
    assert float(retrain.tags["modelfactory/live_mae"]) > 1.25 * float(
        retrain.tags["modelfactory/holdout_mae"]
    )
    alerts = [a for a in read_alerts(local_home().alerts_log) if a.event == "live_metric_retrain"]
    assert alerts and "worse" in alerts[0].text and alerts[0].model == MODEL

    # More labels of the same degraded champion: its retrain was requested; no second one.
    more = changed.sample(100, random_state=2)
    serve_and_label(project, more, "changed-more", already=2 * ROWS)
    again, _ = tick(project, SENSOR, instance, after)
    assert isinstance(again, SkipReason) and "requested already" in again.skip_message

    # A label file that cannot be read is reported once, not crashed on every tick.
    (local_home().labels(MODEL) / "broken.csv").write_text(
        "request_id,row_index,units_sold\nabc,first,1.0\n"
    )
    unreadable, stuck = tick(project, SENSOR, instance, after)
    assert "cannot read the label files" in unreadable.skip_message
    assert "units_sold" in unreadable.skip_message
    assert tick(project, SENSOR, instance, stuck)[0].skip_message == (
        "no new labels since the last check"
    )
    (local_home().labels(MODEL) / "broken.csv").unlink()

    evidence = run_requested(
        project, next(r for r in requests if r.job_name.endswith("_live_metrics")), instance
    )
    assert evidence.success
    (materialization,) = evidence.asset_materializations_for_node(f"{MODEL}__live_metrics")
    assert materialization.metadata["live_verdict"].value == "degraded"
    assert materialization.metadata["labelled_rows"].value == 500  # the window, newest first

    # With labels in, a second Evidently report: the champion's quality, live vs holdout.
    report = build_definitions(project).resolve_job_def(f"{MODEL}_drift_report")
    reported = report.execute_in_process(instance=instance)
    (materialization,) = reported.asset_materializations_for_node(f"{MODEL}__drift_report")
    assert materialization.metadata["labelled_rows"].value == 2 * ROWS + 100
    drift = Path(materialization.metadata["report"].value).read_text()
    assert "Drifted Columns" in drift  # the latest requests vs the training inputs, as before
    quality = Path(materialization.metadata["quality_report"].value).read_text()
    assert "Regression Model Performance. Target: 'units_sold" in quality  # RegressionPreset
    drift_summary = materialization.metadata["summary"].value

    # The requested retrain: the newest days are the changed world, and the new model wins.
    result = run_requested(project, retrain, instance)
    assert result.success
    champion = result.output_for_node(f"{MODEL}__champion")
    assert champion["promoted"] and champion["version"] == "2"
    evaluation = result.output_for_node(f"{MODEL}__evaluation")
    assert evaluation["scores"]["mae"] < evaluation["champion_scores"]["mae"]
    # v2's card says what is known in production: the drift report, and v1's live metric
    # (not yet v2's, which has no labels).
    card = result.output_for_node(f"{MODEL}__model_card")
    live = card.split("- **Live metric:** ")[1].splitlines()[0]
    assert live.startswith("not known yet for v2; the last one, of v1, was degraded: live mae")
    assert f"- **Drift:** {drift_summary}\n" in card  # the latest report's verdict
    assert "[latest drift report](" in card

    # Retraining again on the same data cannot beat the new champion: it stays.
    again = run_requested(project, retrain, instance)
    assert again.success
    kept = again.output_for_node(f"{MODEL}__champion")
    assert not kept["promoted"] and kept["version"] == "2"
    assert model_registry().champion(MODEL).version == "2"


def test_labels_join_captured_rows_and_a_later_file_corrects_an_earlier(project) -> None:
    features = simulated_features(project, n_days=2, start="2026-05-01", seed=8).head(40)
    serve_and_label(project, features, "a")
    folder = local_home().labels(MODEL)
    first = (folder / "a.csv").read_text().splitlines()
    header, row = first[0], first[1].split(",")
    (folder / "b.csv").write_text(f"{header}\n{row[0]},{row[1]},999.0\n")
    (folder / "notes.txt").write_text("not a label file")
    files = sorted(p for p in folder.iterdir() if p.suffix == ".csv")
    labelled = read_labelled(
        local_home().warehouse(MODEL), MODEL, files, target="units_sold", limit=None
    )
    assert len(labelled) == 40  # one row per answered row, the correction replacing its label
    assert (labelled["label"] == 999.0).sum() == 1
    assert set(labelled["model_version"]) == {"1"}


def test_schedules_and_freshness_come_from_the_spec(project) -> None:
    definitions = build_definitions(project)
    retrain = definitions.resolve_schedule_def(f"{MODEL}_retrain_schedule")
    predict = definitions.resolve_schedule_def(f"{MODEL}_predict_schedule")
    assert (retrain.cron_schedule, predict.cron_schedule) == ("0 3 * * 1", "0 * * * *")
    assert retrain.job_name == f"{MODEL}_train" and predict.job_name == f"{MODEL}_predict"
    assert retrain.default_status.value == "RUNNING"
    specs = {s.key: s for s in definitions.resolve_all_asset_specs()}
    candidate = specs[AssetKey([MODEL, "candidate"])].freshness_policy
    hourly = specs[AssetKey([MODEL, "predictions"])].freshness_policy
    assert candidate.warn_window.to_timedelta().days == 7  # weekly retrain + 30m runtime
    assert hourly.warn_window.to_timedelta().total_seconds() == 3600 + 1800
    assert specs[AssetKey([MODEL, "features"])].freshness_policy == hourly  # the tighter one


def test_batch_predictions_score_the_features_with_the_champion(project) -> None:
    job = build_definitions(project).resolve_job_def(f"{MODEL}_predict")
    result = job.execute_in_process(instance=DagsterInstance.get(), partition_key="2026-04-10")
    (materialization,) = result.asset_materializations_for_node(f"{MODEL}__predictions")
    assert materialization.metadata["champion_version"].value == "1"
    assert materialization.metadata["dagster/row_count"].value == 60  # one day's sales

    import duckdb

    with duckdb.connect(str(local_home().warehouse(MODEL)), read_only=True) as con:
        scored = con.execute(
            f"SELECT avg(abs(p.prediction - f.units_sold)), count(*), any_value(p.model_version) "
            f"FROM {MODEL}.predictions p JOIN {MODEL}.features f "
            "USING (date, marketplace, price, promo, temperature)"
        ).fetchone()
    mae, rows, version = scored
    assert rows == 60 and version == "1" and mae < 3.5


def test_a_classifier_gets_live_metrics_and_a_quality_report_from_float_labels(
    copy_example,
) -> None:
    root = copy_example(
        "breast_cancer",
        edit=lambda spec: spec.update(live_metric={"min_labels": 50, "window": 500}),
    )
    classifier = load_project(root)
    instance = DagsterInstance.get()
    seed_data(classifier)
    assert train(classifier, approve=True, instance=instance).promoted
    raw = classifier.function("features", "load_raw")(local_home().data("breast_cancer"))
    features = classifier.function("features", "build_features")(raw).head(120)
    app = create_app([classifier], registry=model_registry(), rollouts=rollout_store(),
                     home=local_home(), settings=ServingSettings(flush_seconds=0.2))  # fmt: skip
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        answered = send_traffic(client, classifier, features, rows_per_request=7)
        wait_until_captured(classifier, len(answered))
    answered["malignant"] = answered["malignant"].astype(float)  # "1.0": as exports write them
    answered.loc[:4, "malignant"] = 1.0 - answered.loc[:4, "malignant"]  # a few are wrong
    write_labels(classifier, answered, "labels")

    result, cursor = tick(classifier, SENSOR, instance)
    assert isinstance(result, SkipReason) and "live roc_auc" in result.skip_message
    live = build_definitions(classifier).resolve_job_def("breast_cancer_live_metrics")
    (metrics,) = live.execute_in_process(instance=instance).asset_materializations_for_node(
        "breast_cancer__live_metrics"
    )
    assert 0.8 < metrics.metadata["live_roc_auc"].value <= 1.0
    report = build_definitions(classifier).resolve_job_def("breast_cancer_drift_report")
    (reported,) = report.execute_in_process(instance=instance).asset_materializations_for_node(
        "breast_cancer__drift_report"
    )
    assert reported.metadata["labelled_rows"].value == 120
    quality = Path(reported.metadata["quality_report"].value).read_text()
    assert "Classification" in quality and "malignant" in quality

    # A label that is none of the model's classes is said once, not crashed on every tick.
    write_labels(classifier, answered.head(1).assign(malignant=2.0), "unknown")
    unknown, stuck = tick(classifier, SENSOR, instance, cursor)
    assert isinstance(unknown, SkipReason)
    assert "labels 2 in " in unknown.skip_message and "unknown.csv" in unknown.skip_message
    assert "none of the classes model version 1 answers (0, 1)" in unknown.skip_message
    assert tick(classifier, SENSOR, instance, stuck)[0].skip_message == (
        "no new labels since the last check"
    )
    alerts = [a for a in read_alerts(local_home().alerts_log) if a.event == "labels_unreadable"]
    assert len(alerts) == 1 and "unknown.csv" in alerts[0].text
