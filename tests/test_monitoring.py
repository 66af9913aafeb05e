"""Drift statistics against the simulator, whose drift knob says which columns moved."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import EXAMPLES
from modelfactory.ml.monitoring import (
    ReferenceProfile,
    compare,
    evidently_report,
    profile,
    report_verdict,
)
from modelfactory.project.loader import load_project
from modelfactory.project.spec import DriftSpec

ROWS = 3000


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    project = load_project(EXAMPLES / "demand_forecast")
    simulate = project.module("simulate").simulate
    build = project.function("features", "build_features")

    def inputs(**knobs) -> pd.DataFrame:
        return build(simulate(**knobs)).drop(columns=["date", "units_sold"])

    return {
        "reference": inputs(seed=0),
        "same": inputs(seed=1).sample(ROWS, random_state=0),  # same process, other draws
        "drifted": inputs(seed=2, drift=0.5).sample(ROWS, random_state=0),  # price, temperature
    }


@pytest.mark.parametrize(
    ("method", "threshold"), [("psi", 0.2), ("jensenshannon", 0.1), ("ks", 0.1)]
)
def test_each_method_flags_exactly_the_columns_the_simulator_moved(
    frames, method, threshold
) -> None:
    reference = profile(frames["reference"])
    spec = DriftSpec(method=method, threshold=threshold, max_share=0.3)

    same = compare(reference, frames["same"], spec)
    assert same.drifted_columns == [] and not same.drifted, same.describe()

    drifted = compare(reference, frames["drifted"], spec)
    assert sorted(drifted.drifted_columns) == ["price", "temperature"]
    assert drifted.drifted and drifted.share == pytest.approx(2 / 5)
    assert "2/5 columns drifted" in drifted.describe() and "worst price" in drifted.describe()


def test_chisquare_scores_one_minus_p_and_flags_the_moved_price(frames) -> None:
    reference = profile(frames["reference"])
    drifted = compare(reference, frames["drifted"], DriftSpec(method="chisquare", threshold=0.999))
    assert "price" in drifted.drifted_columns
    assert all(0.0 <= c.score <= 1.0 for c in drifted.columns)


def test_the_reference_is_a_small_json_summary_not_the_data(frames) -> None:
    reference = profile(frames["reference"])
    text = reference.to_json()
    assert len(text) < 20_000 and reference.rows == len(frames["reference"])
    assert ReferenceProfile.from_json(text) == reference
    assert set(reference.numeric) == {"price", "promo", "temperature", "is_weekend"}
    assert set(reference.categorical) == {"marketplace"}
    assert sum(reference.numeric["price"].shares) == pytest.approx(1.0)


def test_an_unseen_category_counts_as_drift(frames) -> None:
    reference = profile(frames["reference"])
    current = frames["same"].assign(marketplace="fr")
    result = compare(reference, current, DriftSpec(method="psi", threshold=0.2))
    assert result.drifted_columns == ["marketplace"]


def test_columns_missing_from_the_window_are_not_judged(frames) -> None:
    reference = profile(frames["reference"])
    result = compare(reference, frames["same"][["price"]], DriftSpec())
    assert [c.column for c in result.columns] == ["price"]


def _bench_drift_module():
    """bench/drift.py: its data sets are the ones the benchmark compares the tools on."""
    import importlib.util
    import sys

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("bench_drift", REPO / "bench" / "drift.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("rows", [10_000, 100_000])
def test_the_verdict_matches_evidentlys_on_the_benchmark_data(rows: int) -> None:
    bench = _bench_drift_module()
    reference, current = bench.frame(rows, current=False), bench.frame(rows, current=True)
    injected = sorted(c.name for c in bench.COLUMNS if c.drifted)
    run, verdict = bench.evidently_report(rows, preset=True)
    evidently = verdict(run())["flagged"]
    assert evidently == injected  # Evidently's DataDriftPreset, its own default tests
    for method, settings in bench.OURS_SPECS.items():
        ours = compare(profile(reference), current, DriftSpec(method=method, **settings))
        assert sorted(ours.drifted_columns) == evidently, method


@pytest.mark.parametrize(
    ("window", "max_share"),
    [("same", 0.3), ("drifted", 0.3), ("drifted", 0.4)],  # 0.4: 2/5 is not *more* than it
)
def test_the_evidently_report_names_the_verdict_compare_gives(
    frames, tmp_path, window: str, max_share: float
) -> None:
    import json

    spec = DriftSpec(method="psi", threshold=0.2, max_share=max_share)
    result = compare(profile(frames["reference"]), frames[window], spec)
    path = tmp_path / "drift.html"

    shown = evidently_report(frames["reference"], frames[window], path, result, spec)

    read_back = report_verdict(json.loads(path.with_suffix(".json").read_text()))
    assert read_back == shown
    assert shown.drifted_columns == result.drifted_columns
    assert (shown.drifted, shown.share) == (result.drifted, pytest.approx(result.share))
    assert result.drifted is (window == "drifted" and max_share < 0.4)


@pytest.mark.parametrize(
    ("classes", "as_text"),
    [(("benign", "malignant"), str), ((False, True), lambda c: str(c).lower())],
)
def test_a_binary_quality_report_takes_the_models_positive_class(
    tmp_path, classes, as_text
) -> None:
    """Text or boolean labels, read back as text (a CSV, a warehouse's VARCHAR): compared as
    the model's labels (so "false" is False), the positive class the model's last."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modelfactory.ml.evaluation import predict_with_scores
    from modelfactory.ml.live import classified
    from modelfactory.ml.monitoring import Outcomes, evidently_quality_report

    X, target = load_breast_cancer(return_X_y=True, as_frame=True)
    y = pd.Series([classes[int(t == 0)] for t in target], name="diagnosis")  # 0: malignant
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    predicted = predict_with_scores(model, X)
    assert tuple(predicted.classes) == classes
    rows = pd.DataFrame(
        {
            "prediction": predicted.labels.tolist(),
            "label": [as_text(c) for c in y],
            "score": predicted.score,
        }
    )
    truth, answered, _, score = classified(rows)
    assert truth == y.tolist()  # "false" is False, not the truthy text
    outcomes = Outcomes("classification", "diagnosis", "predicted", "score", classes=classes)
    frame = pd.DataFrame({"diagnosis": truth, "predicted": answered, "score": score})
    reference = pd.DataFrame(
        {"diagnosis": y, "predicted": predicted.labels, "score": predicted.score}
    )

    html = evidently_quality_report(reference, frame, tmp_path / "quality.html", outcomes)

    assert html.is_file() and str(classes[-1]) in html.read_text()
