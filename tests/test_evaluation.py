"""The promotion gate's logic, on plain numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelfactory.ml.evaluation import METRICS, compute_metrics, decide, improvement, slice_report

MAE, AUC = METRICS["mae"], METRICS["roc_auc"]


def gate(
    metric=MAE,
    candidate=None,
    champion=None,
    min_improvement=0.0,
    thresholds=None,
    gap=None,
    max_gap=None,
):
    return decide(
        metric=metric,
        candidate=candidate or {metric.name: 1.0},
        champion=champion,
        min_improvement=min_improvement,
        thresholds=thresholds or {},
        worst_slice_gap=gap,
        max_gap=max_gap,
    )


def test_first_candidate_passes_without_a_champion() -> None:
    verdict = gate(candidate={"mae": 3.0})
    assert verdict.passed and verdict.beats_champion
    assert "no champion yet" in verdict.summary


@pytest.mark.parametrize(
    ("metric", "candidate", "champion", "beats"),
    [
        (MAE, 2.0, 3.0, True),  # lower error is better
        (MAE, 3.0, 2.0, False),
        (AUC, 0.95, 0.90, True),  # higher AUC is better
        (AUC, 0.90, 0.95, False),
        (MAE, 2.0, 2.0, False),  # a tie does not replace the champion
    ],
)
def test_direction_is_respected(metric, candidate, champion, beats) -> None:
    verdict = gate(metric, {metric.name: candidate}, {metric.name: champion})
    assert verdict.beats_champion is beats
    assert verdict.passed is beats


def test_min_improvement_is_relative() -> None:
    assert improvement(0.99, 1.0, "minimize") == pytest.approx(0.01)
    assert not gate(candidate={"mae": 0.995}, champion={"mae": 1.0}, min_improvement=0.01).passed
    assert gate(candidate={"mae": 0.98}, champion={"mae": 1.0}, min_improvement=0.01).passed


def test_thresholds_block_even_without_champion() -> None:
    verdict = gate(candidate={"mae": 6.0}, thresholds={"mae": (None, 5.0)})
    assert not verdict.passed and not verdict.meets_thresholds
    assert "mae 6 is above max 5" in verdict.summary
    low = gate(AUC, candidate={"roc_auc": 0.8}, thresholds={"roc_auc": (0.9, None)})
    assert "below min 0.9" in low.summary


def test_threshold_on_a_metric_not_computed_fails() -> None:
    verdict = gate(AUC, candidate={"roc_auc": 0.99}, thresholds={"log_loss": (None, 0.5)})
    assert not verdict.passed
    assert "log_loss was not computed" in verdict.summary


def test_slice_gap_blocks() -> None:
    assert not gate(gap=0.3, max_gap=0.2).passed
    assert gate(gap=0.1, max_gap=0.2).passed


def test_slice_report_measures_relative_gap() -> None:
    frame = pd.DataFrame(
        {
            "market": ["uk"] * 30 + ["de"] * 30 + ["us"] * 5,
            "y_true": np.zeros(65),
            "y_pred": np.r_[np.full(30, 1.0), np.full(30, 3.0), np.full(5, 50.0)],
        }
    )
    report = slice_report(frame, ["market"], MAE, overall=2.0, min_rows=20).set_index("slice")
    assert report.loc["market=uk", "gap"] == pytest.approx(0.5)
    assert report.loc["market=de", "gap"] == pytest.approx(0.5)
    assert not report.loc["market=us", "judged"]  # too few rows to judge


def test_compute_metrics_classification_uses_scores() -> None:
    y = np.array([0, 0, 1, 1])
    scores = compute_metrics(
        "classification", y, np.array([0, 1, 1, 1]), np.array([0.1, 0.6, 0.7, 0.9])
    )
    assert scores["roc_auc"] == pytest.approx(1.0)
    assert scores["accuracy"] == pytest.approx(0.75)
    without = compute_metrics("classification", y, np.array([0, 1, 1, 1]))
    assert "roc_auc" not in without and "accuracy" in without


def test_compute_metrics_regression() -> None:
    scores = compute_metrics("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert scores["mae"] == pytest.approx(2 / 3)
    assert scores["rmse"] == pytest.approx((4 / 3) ** 0.5)
    assert set(scores) == {m.name for m in METRICS.values() if m.task == "regression"}
