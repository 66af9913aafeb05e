"""Classifiers of every common kind: integer, boolean and string labels, binary and multiclass.

The metrics are checked against scikit-learn's own functions on data that ships with it
(iris with its target names as string labels, the Wisconsin breast-cancer set), the spec's
metric catalogue through model.yaml, and the endpoint by serving a real registered model:
a pipeline fitted here on iris with missing values and a text column, logged to the test's
MLflow registry and promoted, answers its own labels with per-class probabilities, accepts
null for a nullable feature, captures the labels as text, and live metrics read them back.
"""

from __future__ import annotations

import json
import math
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import LiveServer
from modelfactory.errors import LabelsError, ProjectError, SpecError
from modelfactory.ml import gate, live
from modelfactory.ml.evaluation import (
    METRICS,
    compute_metrics,
    per_class,
    predict_with_scores,
    slice_report,
)
from modelfactory.project.spec import ModelSpec, load_spec

CLASSIFICATION = sorted(name for name, m in METRICS.items() if m.task == "classification")


def _iris() -> tuple[pd.DataFrame, pd.Series]:
    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    return X, pd.Series(data.target_names[data.target], name="species")


def _breast_cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def _fit(X: pd.DataFrame, y: pd.Series):
    """Scaled logistic regression: a pipeline, as train.py returns, with classes_ of its own."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)


# -- metrics ----------------------------------------------------------------------------


def test_a_multiclass_string_classifier_gets_every_class_aware_metric() -> None:
    X, y = _iris()
    estimator = _fit(X, y)
    predicted = predict_with_scores(estimator, X)
    assert predicted.classes == ["setosa", "versicolor", "virginica"] == list(estimator.classes_)
    assert predicted.proba.shape == (150, 3) and predicted.score is None

    scores = compute_metrics(
        "classification", y, predicted.labels, predicted.proba, predicted.classes
    )

    assert sorted(scores) == CLASSIFICATION
    labels = predicted.labels
    assert (
        scores["f1"] == scores["f1_macro"] == pytest.approx(sk.f1_score(y, labels, average="macro"))
    )
    assert scores["precision_weighted"] == pytest.approx(
        sk.precision_score(y, labels, average="weighted")
    )
    assert scores["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, labels))
    assert scores["roc_auc"] == pytest.approx(
        sk.roc_auc_score(y, predicted.proba, multi_class="ovr", labels=predicted.classes)
    )
    assert scores["log_loss"] == pytest.approx(
        sk.log_loss(y, predicted.proba, labels=predicted.classes)
    )


def test_probability_columns_are_read_in_the_order_of_the_classes() -> None:
    X, y = _iris()
    predicted = predict_with_scores(_fit(X, y), X)
    right = compute_metrics(
        "classification", y, predicted.labels, predicted.proba, predicted.classes
    )
    # The same probabilities named in another order are another model: a worse one.
    shuffled = compute_metrics(
        "classification", y, predicted.labels, predicted.proba, predicted.classes[::-1]
    )
    assert shuffled["log_loss"] > right["log_loss"] + 1
    assert shuffled["roc_auc"] < right["roc_auc"]


@pytest.mark.parametrize(
    "as_label",
    [lambda y: y, lambda y: y.astype(bool), lambda y: y.map({0: "benign", 1: "malignant"})],
)
def test_binary_metrics_are_the_positive_class_whatever_the_label_type(as_label) -> None:
    X, y01 = _breast_cancer()
    y = as_label(1 - y01)  # 1 / True / "malignant" is the positive class: classes_[1]
    estimator = _fit(X, y)
    predicted = predict_with_scores(estimator, X)
    positive = estimator.classes_[1]
    assert predicted.classes[1] == positive and predicted.score is not None

    scores = compute_metrics(
        "classification", y, predicted.labels, predicted.proba, predicted.classes
    )

    assert sorted(scores) == CLASSIFICATION
    assert scores["f1"] == pytest.approx(sk.f1_score(y, predicted.labels, pos_label=positive))
    assert scores["recall"] == pytest.approx(
        sk.recall_score(y, predicted.labels, pos_label=positive)
    )
    assert scores["roc_auc"] == pytest.approx(sk.roc_auc_score(y == positive, predicted.score))
    assert scores["f1_macro"] == pytest.approx(sk.f1_score(y, predicted.labels, average="macro"))
    # The positive-class column alone scores the same as the whole matrix (live traffic and
    # stored batch scores keep only that column).
    assert compute_metrics("classification", y, predicted.labels, predicted.score) == pytest.approx(
        scores
    )


def test_integer_binary_metrics_keep_their_meaning_for_existing_champions() -> None:
    X, y = _breast_cancer()
    predicted = predict_with_scores(_fit(X, y), X)
    scores = compute_metrics("classification", y, predicted.labels, predicted.score)
    assert scores["f1"] == pytest.approx(sk.f1_score(y, predicted.labels))
    assert scores["precision"] == pytest.approx(sk.precision_score(y, predicted.labels))
    assert scores["roc_auc"] == pytest.approx(sk.roc_auc_score(y, predicted.score))
    assert scores["log_loss"] == pytest.approx(sk.log_loss(y, predicted.score))


def test_metrics_undefined_on_a_small_window_are_left_out() -> None:
    classes = ["setosa", "versicolor", "virginica"]
    truth, guess = ["setosa"] * 3, ["setosa", "setosa", "versicolor"]
    proba = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.3, 0.6, 0.1]])
    scores = compute_metrics("classification", truth, guess, proba, classes)
    assert "roc_auc" not in scores  # one class among the labels: no ranking to judge
    assert scores["accuracy"] == pytest.approx(2 / 3) and "log_loss" in scores
    # One label seen and no classes known: which is the positive class? Not guessed.
    assert math.isnan(METRICS["f1"].score([1, 1], [1, 1]))


def test_a_label_none_of_the_classes_leaves_out_the_metrics_that_need_them() -> None:
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    truth, guess = (
        ["Adelie", "adelie", "Gentoo", "Chinstrap"],
        ["Adelie", "Adelie", "Gentoo", "Gentoo"],
    )
    proba = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]])
    scores = compute_metrics("classification", truth, guess, proba, classes)
    assert not {"roc_auc", "log_loss", "f1", "precision", "recall"} & set(scores)
    assert scores["accuracy"] == pytest.approx(2 / 4)  # "adelie" is simply a wrong answer
    assert "f1_macro" in scores and "balanced_accuracy" in scores
    # Binary: a third label has no place in the positive class's f1 (sklearn would raise).
    binary = compute_metrics("classification", [0, 1, 2], [0, 1, 1], [0.1, 0.9, 0.8], [0, 1])
    assert "f1" not in binary and "roc_auc" not in binary and binary["accuracy"] == 2 / 3


def test_per_class_scores_follow_the_classes() -> None:
    X, y = _iris()
    predicted = predict_with_scores(_fit(X, y), X)
    table = per_class(y, predicted.labels, predicted.classes)
    assert table["class"].tolist() == ["setosa", "versicolor", "virginica"]
    assert list(table.columns) == ["class", "precision", "recall", "f1", "support"]
    assert table["support"].tolist() == [50, 50, 50]
    report = sk.classification_report(y, predicted.labels, output_dict=True)
    assert table.loc[1, "f1"] == pytest.approx(report["versicolor"]["f1-score"])
    # A class never predicted has no precision: NaN, not 0.
    never = per_class(["a", "b"], ["a", "a"], ["a", "b"])
    assert math.isnan(never.loc[1, "precision"]) and never.loc[1, "recall"] == 0


def test_slices_of_a_multiclass_model_score_their_own_rows() -> None:
    X, y = _iris()
    predicted = predict_with_scores(_fit(X, y), X)
    frame = X.assign(wide=X["sepal_width"] > 3, y_true=y, y_pred=predicted.labels)
    metric = METRICS["log_loss"]
    overall = metric.score(y, predicted.labels, predicted.proba, predicted.classes)
    report = slice_report(frame, ["wide"], metric, overall, 10, predicted)
    wide = (X["sepal_width"] > 3).to_numpy()
    expected = sk.log_loss(y[wide], predicted.proba[wide], labels=predicted.classes)
    assert report.set_index("slice").loc["wide=True", "log_loss"] == pytest.approx(expected)


def _flowers(**extra: Any) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "flowers",
            "owner": "team:botany",
            "description": "The species of an iris.",
            "task": "classification",
            "target": "species",
            "metric": {"name": "roc_auc", "direction": "maximize"},
            **extra,
        }
    )


def test_a_holdout_with_a_class_the_training_rows_lack_is_refused_naming_the_split() -> None:
    X, y = _iris()
    seen = (y != "virginica").to_numpy()  # virginica only in the latest rows
    estimator = _fit(X[seen], y[seen])
    spec = _flowers(split={"by": "measured_at", "test_size": 0.3})
    with pytest.raises(ProjectError) as raised:
        gate.score(spec, estimator, X, y)
    message = str(raised.value)
    assert "'virginica'" in message and "never saw in training" in message
    assert "model.yaml's split.by: measured_at" in message
    assert gate.score(spec, estimator, X[seen], y[seen]).scores["roc_auc"] > 0.9


def test_replay_on_a_score_metric_of_a_multiclass_model_is_refused() -> None:
    X, y = _iris()
    replayed = _flowers(
        split={"by": "measured_at"},
        predictions={"daily_from": "2026-01-01"},
        promotion={"replay": {"days": 7}},
    )
    with pytest.raises(ProjectError, match=r"promotion\.replay judges each day on metric roc_auc"):
        gate.score(replayed, _fit(X, y), X, y)
    binary = (y != "virginica").to_numpy()  # one probability per row is the whole story
    assert (
        "roc_auc" in gate.score(replayed, _fit(X[binary], y[binary]), X[binary], y[binary]).scores
    )


# -- model.yaml -------------------------------------------------------------------------

SPEC = """\
name: flowers
owner: team:botany
description: The species of an iris, from its measurements.
task: classification
target: species
metric: {{name: {metric}, direction: {direction}}}
promotion: {{thresholds: {{balanced_accuracy: {{min: 0.8}}}}}}
params: {{}}
"""


@pytest.mark.parametrize(
    "metric, direction",
    [("f1_macro", "maximize"), ("recall_weighted", "maximize"), ("log_loss", "minimize")],
)
def test_a_multiclass_metric_is_accepted_in_model_yaml(tmp_path: Path, metric, direction) -> None:
    path = tmp_path / "flowers" / "model.yaml"
    path.parent.mkdir()
    path.write_text(SPEC.format(metric=metric, direction=direction))
    assert load_spec(path).metric.name == metric


@pytest.mark.parametrize(
    "metric, direction, message",
    [
        ("f1_micro", "maximize", "metric.name must be one of ["),
        ("f1_weighted", "minimize", "metric.direction must be 'maximize' for 'f1_weighted'"),
        (
            "mae",
            "minimize",
            "metric.name 'mae' is a regression metric, but task is 'classification'",
        ),
    ],
)
def test_a_wrong_metric_is_a_clear_spec_error(tmp_path: Path, metric, direction, message) -> None:
    path = tmp_path / "flowers" / "model.yaml"
    path.parent.mkdir()
    path.write_text(SPEC.format(metric=metric, direction=direction))
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert message in str(raised.value) and "model.yaml" in str(raised.value)


# -- live metrics -----------------------------------------------------------------------


def test_live_metrics_compare_labels_as_the_models_label_type() -> None:
    probabilities = [{"False": 0.2, "True": 0.8}, {"False": 0.9, "True": 0.1}] * 2
    labelled = pd.DataFrame(
        {
            "model_version": "3",
            "prediction": [True, False, True, False],
            "score": [p["True"] for p in probabilities],
            "probabilities": probabilities,
            "label": ["true", "0", 1, "False"],  # as label files may hold them
        }
    )
    table = live.version_metrics(labelled, "classification")
    assert table.loc[0, "accuracy"] == 1.0 and table.loc[0, "f1"] == 1.0
    assert table.loc[0, "roc_auc"] == 1.0
    classes = live.version_classes(labelled)
    assert classes["class"].tolist() == ["False", "True"] and classes["support"].tolist() == [2, 2]


def test_a_live_label_none_of_the_models_classes_is_a_labels_error_naming_it() -> None:
    probabilities = [{"Adelie": 0.7, "Chinstrap": 0.2, "Gentoo": 0.1}] * 3
    labelled = pd.DataFrame(
        {
            "model_version": "2",
            "prediction": ["Adelie"] * 3,
            "score": None,
            "probabilities": probabilities,
            "label": ["Adelie", "adelie", "Emperor"],
            "label_file": ["/labels/penguins/a.csv"] + ["/labels/penguins/b.csv"] * 2,
        }
    )
    for compute in (live.version_metrics, live.version_classes):
        args = (labelled, "classification") if compute is live.version_metrics else (labelled,)
        with pytest.raises(LabelsError) as raised:
            compute(*args)
        message = str(raised.value)
        assert "'adelie', 'Emperor'" in message and "/labels/penguins/b.csv" in message
        assert "a.csv" not in message and "model version 2" in message
    # Without probabilities the classes are unknown, but text for a True/False model is wrong.
    booleans = labelled.assign(prediction=[True] * 3, probabilities=None, label=["1", "yes", 0])
    with pytest.raises(LabelsError, match=r"labels 'yes' in /labels/penguins/b\.csv are"):
        live.version_metrics(booleans, "classification")


# -- the endpoint -----------------------------------------------------------------------

SCHEMAS = """
import pandera.pandas as pa

_MEASURES = {"sepal_width": False, "petal_length": False, "petal_width": False}
FeatureSchema = pa.DataFrameSchema(
    {
        "sepal_length": pa.Column(float, pa.Check.gt(0), nullable=True),
        **{name: pa.Column(float, pa.Check.gt(0)) for name in _MEASURES},
        "colour": pa.Column(str, nullable=True),
        "species": pa.Column(str, pa.Check.isin(["setosa", "versicolor", "virginica"])),
    }
)
RawSchema = FeatureSchema
"""
FEATURES = """
def load_raw(data_dir):
    raise NotImplementedError("the test registers its model directly")


def build_features(raw):
    return raw
"""
TRAIN = """
def train(X, y, params):
    raise NotImplementedError("the test registers its model directly")
"""


def _flowers_frame() -> tuple[pd.DataFrame, pd.Series]:
    """Iris with missing sepal lengths and a text column that is sometimes missing."""
    X, y = _iris()
    X = X.copy()
    X.loc[X.index[::7], "sepal_length"] = np.nan
    X["colour"] = np.where(X["petal_width"] > 1.0, "deep", "pale").astype(object)
    X.loc[X.index[::5], "colour"] = np.nan
    return X, y


def _flowers_pipeline(X: pd.DataFrame, y: pd.Series):
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    numbers = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    text = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
    )
    columns = make_column_transformer(
        (SimpleImputer(strategy="median"), numbers), (text, ["colour"])
    )
    return make_pipeline(columns, LogisticRegression(max_iter=2000)).fit(X, y)


@pytest.fixture
def flowers(workdir: Path) -> Path:
    root = workdir / "model_projects" / "flowers"
    root.mkdir()
    (root / "model.yaml").write_text(SPEC.format(metric="f1_macro", direction="maximize"))
    for name, text in {"schemas.py": SCHEMAS, "features.py": FEATURES, "train.py": TRAIN}.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


def _register(X: pd.DataFrame, y: pd.Series) -> str:
    """The fitted pipeline as the champion of `flowers` in the test's MLflow registry."""
    from modelfactory.stores.home import model_registry

    registry = model_registry()
    logged = registry.log_candidate(
        model="flowers",
        estimator=_flowers_pipeline(X, y),
        X_sample=X.head(20),
        params={},
        metrics={},
        tags={},
    )
    registry.promote(
        "flowers", logged.version, expected_current=None, actor="test", reason="first champion"
    )
    return logged.version


@pytest.mark.slow
def test_a_multiclass_endpoint_answers_labels_with_probabilities_and_takes_nulls(
    flowers: Path,
) -> None:
    from modelfactory.project.loader import load_project
    from modelfactory.serving import create_app
    from modelfactory.serving.app import ServingSettings
    from modelfactory.stores.home import label_folder, local_home, model_registry, rollout_store
    from modelfactory.stores.inference_reader import read_inference_log, read_labelled

    X, y = _flowers_frame()
    version = _register(X, y)
    rows = [
        {**X.iloc[0].to_dict(), "sepal_length": None, "colour": None},  # setosa, with nulls
        {**X.iloc[60].to_dict(), "colour": "deep"},
        {**X.iloc[120].to_dict(), "colour": "deep"},
    ]
    rows = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in rows]
    app = create_app(
        [load_project(flowers)],
        registry=model_registry(),
        rollouts=rollout_store(),
        home=local_home(),
        settings=ServingSettings(refresh_seconds=0.1, flush_seconds=0.2),
    )
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        answer = client.post("/models/flowers/predict", json={"rows": rows})
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert [p["prediction"] for p in predictions] == ["setosa", "versicolor", "virginica"]
        first = predictions[0]
        assert first["version"] == version and first["score"] is None
        assert list(first["probabilities"]) == ["setosa", "versicolor", "virginica"]
        assert sum(first["probabilities"].values()) == pytest.approx(1)
        assert max(first["probabilities"], key=first["probabilities"].get) == "setosa"

        # A feature the schema does not declare nullable still refuses null; non-finite too.
        refused = client.post(
            "/models/flowers/predict", json={"rows": [{**rows[1], "petal_width": None}]}
        )
        assert refused.status_code == 422 and "rows[0].petal_width" in refused.json()["detail"]
        huge = json.dumps({"rows": [{**rows[1], "petal_width": 12345.5}]})
        huge = huge.replace("12345.5", "1e400")  # infinity, as JSON can say it
        assert client.post("/models/flowers/predict", content=huge).status_code == 422

        schema = client.get("/openapi.json").json()["components"]["schemas"]["Prediction"]
        assert "probabilities" in schema["properties"]
        request_id = answer.json()["request_id"]

        def logged() -> pd.DataFrame:
            log = read_inference_log(local_home().warehouse("flowers"), "flowers")
            return log[log["request_id"] == request_id]

        deadline = time.monotonic() + 30
        while len(logged()) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    log = logged().sort_values("row_index")
    assert log["output"].tolist() == ['"setosa"', '"versicolor"', '"virginica"']

    folder = label_folder("flowers")
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"request_id": request_id, "row_index": [0, 1, 2], "species": y.iloc[[0, 60, 120]]}
    ).to_csv(folder / "day1.csv", index=False)
    labelled = read_labelled(
        local_home().warehouse("flowers"), "flowers", [folder / "day1.csv"], target="species"
    )
    assert sorted(labelled["prediction"]) == ["setosa", "versicolor", "virginica"]
    table = live.version_metrics(labelled, "classification")
    assert table.loc[0, "accuracy"] == 1.0 and table.loc[0, "f1_macro"] == 1.0
    assert "log_loss" in table.columns
    assert live.version_classes(labelled)["support"].tolist() == [1, 1, 1]


def test_both_log_stores_keep_a_classifiers_answers_as_given(tmp_path: Path) -> None:
    """DuckDB parses the spooled record itself, Snowflake's store in pandas: the same labels
    and probabilities, and a log made before those columns gets them on the next flush."""
    import duckdb

    from modelfactory.serving.capture import CaptureFlusher, CaptureSpool
    from modelfactory.stores.inference_log import exploded_records
    from modelfactory.stores.inference_reader import read_inference_log

    record = {
        "request_id": "r1",
        "received_at": "2026-05-01T10:00:00",
        "model_version": "1",
        "role": "stable",
        "status": "ok",
        "error": None,
        "latency_ms": 1.0,
        "inputs": [{"x": 1.0}, {"x": 2.0}],
        "outputs": ["Adelie", "Gentoo"],
        "scores": None,
        "probabilities": [{"Adelie": 0.9, "Gentoo": 0.1}, {"Adelie": 0.2, "Gentoo": 0.8}],
    }
    line = json.dumps(record).encode() + b"\n"
    warehouse = tmp_path / "m.duckdb"
    with duckdb.connect(str(warehouse)) as con:  # a log from before output and probabilities
        con.execute(
            "CREATE TABLE m_inference_log (request_id VARCHAR NOT NULL, role VARCHAR NOT NULL, "
            "row_index INTEGER NOT NULL, received_at TIMESTAMP NOT NULL, model_version VARCHAR "
            "NOT NULL, status VARCHAR NOT NULL, error VARCHAR, latency_ms DOUBLE, features "
            "VARCHAR, prediction DOUBLE, score DOUBLE)"
        )
    spool = CaptureSpool(tmp_path / "spool")
    spool.append(line)
    assert CaptureFlusher("m", spool, warehouse).flush() == 2

    duck = read_inference_log(warehouse, "m")
    pandas = exploded_records(line)
    for log in (duck, pandas):
        assert log["output"].map(json.loads).tolist() == ["Adelie", "Gentoo"]
        assert log["prediction"].isna().all()  # not a number
        assert json.loads(log["probabilities"].iloc[1]) == {"Adelie": 0.2, "Gentoo": 0.8}
