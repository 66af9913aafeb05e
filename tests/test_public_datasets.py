"""Real data sets, as the repository ships them: model_projects/penguins (the palmerpenguins
package: three species as text, missing measurements and sexes) and model_projects/diabetes
(scikit-learn's bundled study: regression on `progression`). Neither has a date column.

Each is trained once per module through the real Dagster train job, gated and promoted in a
real MLflow registry, served by the real endpoint on 127.0.0.1, and drift-checked by the
real drift sensor on the traffic the endpoint captured.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason, build_sensor_context

from conftest import EXAMPLES, LiveServer, wait_for
from modelfactory.ml import datasets
from modelfactory.orchestration.assets import train_job_name
from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.resources import project_resources
from modelfactory.orchestration.runs import TrainOutcome, train
from modelfactory.orchestration.sensors import DRIFT_SENSOR
from modelfactory.project.loader import ModelProject, load_project
from modelfactory.serving import create_app
from modelfactory.serving.app import ServingSettings
from modelfactory.stores.home import local_home, model_registry, rollout_store
from modelfactory.stores.registry import HOLDOUT_TAG

pytestmark = pytest.mark.slow

# What moves each model's live inputs away from its training data: within the schemas'
# bounds (the endpoint accepts every row), far enough for PSI, in more columns than
# drift.max_share allows.
SHIFTS = {
    "penguins": {"bill_length_mm": 8.0, "flipper_length_mm": 25.0, "body_mass_g": 1500.0},
    "diabetes": {"bmi": 8.0, "bp": 25.0, "glu": 30.0, "ltg": 1.0},
}


@dataclass(frozen=True)
class Trained:
    project: ModelProject
    outcome: TrainOutcome
    home: Path

    @property
    def name(self) -> str:
        return self.project.name

    def inputs(self) -> pd.DataFrame:
        """Every row's model inputs, as build_features gives them."""
        features = self.project.function("features", "build_features")
        raw = self.project.function("features", "load_raw")(local_home().data(self.name))
        return datasets.inputs(features(raw), self.project.spec)


@pytest.fixture(scope="module", params=sorted(SHIFTS))
def trained(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Trained]:
    """The repository's project trained once, in a home of its own for the whole module."""
    home = tmp_path_factory.mktemp(f"{request.param}-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELFACTORY_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        (home / "dagster").mkdir()
        project = load_project(EXAMPLES / request.param)
        outcome = train(project, instance=DagsterInstance.get())
        assert outcome.success, outcome.errors
        yield Trained(project, outcome, home)


@pytest.fixture(autouse=True)
def mf_home(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test of this module runs in its model's trained home (not a fresh one)."""
    monkeypatch.setenv("MODELFACTORY_HOME", str(trained.home))
    monkeypatch.setenv("DAGSTER_HOME", str(trained.home / "dagster"))
    return trained.home


@pytest.fixture(scope="module")
def endpoint(trained: Trained) -> Iterator[LiveServer]:
    app = create_app(
        [trained.project],
        registry=model_registry(),
        rollouts=rollout_store(),
        home=local_home(),
        settings=ServingSettings(refresh_seconds=0.1, flush_seconds=0.2),
    )
    with LiveServer(app) as server:
        yield server


def post(server: LiveServer, model: str, rows: list[dict]) -> httpx.Response:
    """A predict request, retried while the endpoint has not loaded the champion yet."""
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def answered() -> httpx.Response | None:
            response = client.post(f"/models/{model}/predict", json={"rows": rows})
            return None if response.status_code == 503 else response

        return wait_for(answered, f"{model}'s endpoint to load its champion")


def as_json_rows(frame: pd.DataFrame) -> list[dict]:
    """Rows as an application sends them: a missing value is JSON null."""
    return json.loads(frame.to_json(orient="records"))


def test_trains_through_the_gate_to_champion(trained: Trained) -> None:
    spec = trained.project.spec
    assert trained.outcome.promoted, trained.outcome.decision
    champion = model_registry().champion(trained.name)
    assert champion is not None and champion.version == "1"
    assert champion.tags["mf.verdict"] == "passed", champion.tags["mf.verdict_reasons"]
    holdout = champion.holdout_metrics
    for name, bounds in spec.promotion.thresholds.items():
        assert bounds.min is None or holdout[name] >= bounds.min, (name, holdout)
        assert bounds.max is None or holdout[name] <= bounds.max, (name, holdout)
    assert "worst slice gap" in champion.tags["mf.verdict_reasons"]  # slices were judged
    evaluation = DagsterInstance.get().get_latest_materialization_event(
        AssetKey([trained.name, "evaluation"])
    )
    metadata = evaluation.asset_materialization.metadata
    assert metadata["verdict"].value == "passed"
    if spec.task == "classification":
        schemas = trained.project.module("schemas")
        per_class = json.loads(champion.tags["mf.per_class"])
        assert [row["class"] for row in per_class] == schemas.SPECIES
        assert all(0.0 <= row["f1"] <= 1.0 and row["support"] > 0 for row in per_class)
        assert "Chinstrap" in metadata["per_class"].value  # the table the UI shows
        assert {"f1_macro", "roc_auc", "log_loss"} <= set(holdout)
    else:
        assert {"mae", "rmse", "r2"} <= set(holdout) and f"{HOLDOUT_TAG}mae" in champion.tags


def test_serves_a_row_with_missing_values_as_the_model_sees_nan(
    trained: Trained, endpoint: LiveServer
) -> None:
    inputs = trained.inputs()
    incomplete = inputs[inputs.isna().any(axis=1)]
    if trained.name == "diabetes":
        assert incomplete.empty  # the study has no missing value: a complete row
        row = as_json_rows(inputs.head(1))
        response = post(endpoint, trained.name, row)
        assert response.status_code == 200, response.text
        (answer,) = response.json()["predictions"]
        assert isinstance(answer["prediction"], float) and math.isfinite(answer["prediction"])
        return

    row = as_json_rows(incomplete.head(1))  # a penguin measured for nothing but its island
    assert row[0]["sex"] is None and row[0]["body_mass_g"] is None
    response = post(endpoint, trained.name, row)
    assert response.status_code == 200, response.text
    (answer,) = response.json()["predictions"]
    estimator = model_registry().load(trained.name, "1")
    expected = estimator.predict_proba(incomplete.head(1))[0]  # NaN, as in training
    assert answer["prediction"] in trained.project.module("schemas").SPECIES
    assert answer["probabilities"] == pytest.approx(
        dict(zip(estimator.classes_.tolist(), expected.tolist(), strict=True))
    )

    refused = post(endpoint, trained.name, [{**row[0], "island": None}])  # not nullable
    assert refused.status_code == 422, refused.text
    assert "island" in refused.text


def test_drift_is_checked_on_the_traffic_the_endpoint_captured(
    trained: Trained, endpoint: LiveServer
) -> None:
    spec, name = trained.project.spec, trained.name
    window = spec.drift.window
    calm = trained.inputs().sample(window, replace=True, random_state=1)
    shifted = trained.inputs().sample(window, replace=True, random_state=2)
    for column, shift in SHIFTS[name].items():
        shifted[column] = shifted[column] + shift

    sensor = build_definitions(trained.project).resolve_sensor_def(DRIFT_SENSOR)

    def tick(cursor: str | None) -> tuple[object, str | None]:
        context = build_sensor_context(
            instance=DagsterInstance.get(), resources=project_resources(name), cursor=cursor
        )
        return sensor(context), context.cursor

    def send(frame: pd.DataFrame) -> None:
        for start in range(0, len(frame), 50):
            response = post(endpoint, name, as_json_rows(frame.iloc[start : start + 50]))
            assert response.status_code == 200, response.text

    def judged(cursor: str | None) -> tuple[object, str | None]:
        """The first tick that judges a whole window (the endpoint flushes its capture every
        0.2 s; until then the sensor counts the new rows and waits)."""

        def whole() -> tuple[object, str | None] | None:
            result, moved_to = tick(cursor)
            counting = isinstance(result, SkipReason) and "new rows since" in str(
                result.skip_message
            )
            return None if counting else (result, moved_to)

        return wait_for(whole, f"a window of {window} captured requests")

    send(calm)
    quiet, cursor = judged(None)
    columns = len(calm.columns)  # every input judged, none drifted (missing values included)
    assert isinstance(quiet, SkipReason), quiet
    assert f"no drift in {columns} columns over {window} rows" in quiet.skip_message, quiet

    send(shifted)
    moved, _ = judged(cursor)
    requests = list(moved)
    assert requests and all(isinstance(r, RunRequest) for r in requests), moved
    (retrain,) = [r for r in requests if r.job_name == train_job_name(name)]
    assert retrain.tags["modelfactory/trigger"] == "drift"
    assert set(retrain.tags["modelfactory/drifted_columns"].split(",")) >= set(SHIFTS[name])


def test_the_drift_report_reports_quality_once_labels_arrived(
    trained: Trained, endpoint: LiveServer
) -> None:
    """Labels land as text (as a CSV, or a warehouse's VARCHAR, gives them back); the drift
    report the sensor requests judges the champion it named, plots the rows that champion
    trained on, and adds Evidently's quality report of it on the labelled rows, penguins'
    three text classes included."""
    import dagster as dg

    from modelfactory.orchestration.sensors import CHAMPION_TAG, DRIFT_WINDOW_TAG
    from modelfactory.stores.home import label_folder

    spec, name = trained.project.spec, trained.name
    rows = trained.inputs().sample(60, random_state=3)
    response = post(endpoint, name, as_json_rows(rows))
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]
    raw = trained.project.function("features", "load_raw")(local_home().data(name))
    truth = trained.project.function("features", "build_features")(raw).loc[rows.index]
    folder = label_folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"request_id": request_id, "row_index": range(len(rows)), spec.target: truth[spec.target]}
    ).astype({spec.target: str}).to_csv(folder / "quality.csv", index=False)

    def labelled() -> bool:
        from modelfactory.stores.inference_reader import read_labelled

        found = read_labelled(
            local_home().warehouse(name), name, [folder / "quality.csv"], target=spec.target
        )
        return len(found) == len(rows)

    wait_for(labelled, "the labelled requests in the inference log")
    job = build_definitions(trained.project).resolve_job_def(f"{name}_drift_report")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(), tags={CHAMPION_TAG: "1", DRIFT_WINDOW_TAG: ""}
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node(f"{name}__drift_report")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert "quality_report_error" not in metadata, metadata.get("quality_report_error")
    assert metadata["champion_version"] == "1" and metadata["labelled_rows"] >= len(rows)
    assert metadata["reference_rows_from"].startswith("v1's training snapshot ")
    html = Path(metadata["quality_report"]).read_text()
    if spec.task == "classification":
        species = trained.project.module("schemas").SPECIES
        assert metadata["quality_classes"] == ", ".join(species)
        assert all(s in html for s in species)
    (card,) = result.asset_materializations_for_node(f"{name}__model_card")
    assert "- **Drift:**" in card.metadata["card"].value
