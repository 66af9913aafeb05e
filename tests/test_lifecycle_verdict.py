"""The evaluation's verdict (lifecycle/verdict.py) on real scikit-learn models and frames:
promote, hold for a person, reject; ties, thresholds, slices, NaN metrics; what the version
is tagged with and what each check says. No Dagster, no MLflow."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelfactory.lifecycle.verdict import judge, per_class_tags, slices_tags
from modelfactory.ml import gate
from modelfactory.project.spec import ModelSpec


def classifier_spec(**promotion) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "cancer",
            "owner": "a@example.com",
            "description": "malignant or not",
            "task": "classification",
            "target": "malignant",
            "metric": {"name": "roc_auc", "direction": "maximize"},
            "promotion": promotion,
        }
    )


@pytest.fixture(scope="module")
def cancer():
    """The breast-cancer rows split once, a fitted logistic regression (the good model) and a
    prior-only dummy (the bad one)."""
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target.rename("malignant")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X_train, y_train)
    bad = DummyClassifier(strategy="prior").fit(X_train, y_train)
    return X_test, y_test, good, bad


def verdict_of(spec, candidate, champion, X, y, **kw):
    scored = gate.score(spec, candidate, X, y)
    champion_scores = (
        gate.score(spec, champion, X, y, slices=False).scores if champion is not None else None
    )
    return judge(
        spec,
        scored,
        candidate_version="2",
        champion_version="1" if champion is not None else None,
        champion_scores=champion_scores,
        **kw,
    )


def test_the_first_good_model_is_promoted_and_its_version_says_against_none(cancer) -> None:
    X, y, good, _ = cancer
    verdict = verdict_of(classifier_spec(), good, None, X, y)
    assert verdict.outcome == "promote" and verdict.passed
    assert "no champion yet" in verdict.summary
    tags = verdict.version_tags()
    assert tags["mf.verdict"] == "passed"
    assert tags["mf.compared_with"] == "none"
    assert tags["mf.holdout_rows"] == str(len(X))
    assert float(tags["mf.holdout.roc_auc"]) == pytest.approx(verdict.scores["roc_auc"], rel=1e-5)
    per_class = json.loads(tags["mf.per_class"])  # the classifier's table, for its card
    assert {str(row["class"]) for row in per_class} == {"0", "1"}


def test_a_better_candidate_is_promoted_under_auto_and_held_for_a_person_under_manual(
    cancer,
) -> None:
    X, y, good, bad = cancer
    auto = verdict_of(classifier_spec(policy="auto"), good, bad, X, y)
    manual = verdict_of(classifier_spec(policy="manual"), good, bad, X, y)
    assert auto.outcome == "promote"
    assert manual.outcome == "hold"  # the same gate verdict; a person decides
    assert auto.gate == manual.gate
    assert manual.version_tags()["mf.compared_with"] == "1"


def test_a_worse_candidate_is_rejected_and_the_check_says_by_how_much(cancer) -> None:
    X, y, good, bad = cancer
    verdict = verdict_of(classifier_spec(), bad, good, X, y)
    assert verdict.outcome == "reject"
    assert verdict.summary.startswith("failed: worse: roc_auc")
    assert verdict.version_tags()["mf.verdict"] == "failed"
    beats = next(c for c in verdict.checks() if c.name == "beats_champion")
    assert not beats.passed
    assert beats.metadata["champion"] == pytest.approx(verdict.champion_scores["roc_auc"])
    assert beats.description == verdict.gate.reasons[0]


def test_a_tie_is_not_an_improvement(cancer) -> None:
    """min_improvement 0 means strictly better: the champion against itself is rejected."""
    X, y, good, _ = cancer
    verdict = verdict_of(classifier_spec(min_improvement=0.0), good, good, X, y)
    assert verdict.outcome == "reject"
    assert "+0.00%, needs more than 0.00%" in verdict.summary


def test_an_unmet_threshold_rejects_even_the_first_model(cancer) -> None:
    X, y, good, _ = cancer
    spec = classifier_spec(thresholds={"roc_auc": {"min": 0.9999}, "recall": {"min": 0.5}})
    verdict = verdict_of(spec, good, None, X, y)
    assert verdict.outcome == "reject"
    assert "roc_auc" in verdict.summary and "below min 0.9999" in verdict.summary
    checks = {c.name: c for c in verdict.checks()}
    assert not checks["meets_thresholds"].passed
    assert set(checks["meets_thresholds"].metadata) == {"roc_auc", "recall"}
    assert (
        checks["beats_champion"].passed and checks["beats_champion"].metadata["champion"] == "none"
    )


def test_a_metric_the_holdout_cannot_compute_fails_its_threshold(cancer) -> None:
    """A holdout of one class: roc_auc is NaN, so it is not among the scores (never a NaN
    that compares as within bounds), and the threshold on it fails, saying why."""
    X, y, good, _ = cancer
    spec = classifier_spec(thresholds={"roc_auc": {"min": 0.5}})
    spec = spec.model_copy(update={"metric": spec.metric.model_copy(update={"name": "accuracy"})})
    only = y == 1
    verdict = verdict_of(spec, good, None, X[only], y[only])
    assert "roc_auc" not in verdict.scores
    assert verdict.outcome == "reject"
    assert "threshold: roc_auc was not computed for this model" in verdict.summary


def test_a_nan_champion_score_never_promotes(cancer) -> None:
    """Scores recorded elsewhere (an old version's tags) may hold NaN: no comparison with
    NaN counts as beating it."""
    X, y, good, _ = cancer
    spec = classifier_spec()
    scored = gate.score(spec, good, X, y)
    verdict = judge(
        spec,
        scored,
        candidate_version="2",
        champion_version="1",
        champion_scores={"roc_auc": math.nan},
    )
    assert verdict.outcome == "reject"
    assert not next(c for c in verdict.checks() if c.name == "beats_champion").passed


def regression_frame(rows: int = 400) -> tuple[pd.DataFrame, pd.Series]:
    """y = 3x + noise, with a region where the noise is ten times larger: its slice strays."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 10, rows)
    region = np.where(rng.random(rows) < 0.5, "calm", "wild")
    noise = rng.normal(0, 1, rows) * np.where(region == "wild", 10, 1)
    return pd.DataFrame({"x": x, "region": region}), pd.Series(3 * x + noise, name="sales")


def regression_spec(**promotion) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "shop",
            "owner": "a@example.com",
            "description": "sales",
            "task": "regression",
            "target": "sales",
            "metric": {"name": "mae", "direction": "minimize"},
            "promotion": promotion,
        }
    )


class OnX(LinearRegression):
    """A linear regression on column x alone: the slice column stays an input of the frame."""

    def fit(self, X, y):
        return super().fit(X[["x"]], y)

    def predict(self, X):
        return super().predict(X[["x"]])


def test_a_straying_slice_rejects_and_the_slice_table_is_tagged() -> None:
    X, y = regression_frame()
    model = OnX().fit(X, y)
    slices = {"by": ["region"], "max_gap": 0.2, "min_rows": 20}
    verdict = verdict_of(regression_spec(slices=slices), model, None, X, y)
    assert verdict.outcome == "reject"
    assert verdict.worst_gap is not None and verdict.worst_gap > 0.2
    gap = next(c for c in verdict.checks() if c.name == "slice_gap")
    assert not gap.passed and gap.metadata["worst_gap"] == verdict.worst_gap
    tags = verdict.version_tags()
    assert tags["mf.slices_total"] == "2"
    first = json.loads(tags["mf.slices"])[0]
    assert first["slice"] == "region=wild"  # largest gap first
    assert "mf.per_class" not in tags  # a regression has no classes


def test_without_slices_the_gap_check_passes_as_not_configured() -> None:
    X, y = regression_frame()
    verdict = verdict_of(regression_spec(), OnX().fit(X, y), DummyRegressor().fit(X, y), X, y)
    assert verdict.outcome == "promote"
    gap = next(c for c in verdict.checks() if c.name == "slice_gap")
    assert gap.passed and gap.metadata == {"worst_gap": "not configured"}
    assert [c.name for c in verdict.checks()] == ["beats_champion", "meets_thresholds", "slice_gap"]


def test_large_tables_are_cut_to_fit_a_tag() -> None:
    many = pd.DataFrame({"region": [f"r{i}" for i in range(5000)], "gap": np.linspace(0, 1, 5000)})
    tags = slices_tags(many, limit=2_000)
    kept = json.loads(tags["mf.slices"])
    assert len(tags["mf.slices"]) <= 2_000 and tags["mf.slices_total"] == "5000"
    assert kept[0]["gap"] == 1.0  # whole records, largest gaps first
    classes = pd.DataFrame({"class": range(3000), "f1": 0.5})
    assert per_class_tags(classes, limit=2_000) == {}  # left to the metadata table
    assert "mf.per_class" in per_class_tags(classes.head(3))
