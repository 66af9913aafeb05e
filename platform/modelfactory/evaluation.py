"""Metrics, the champion comparison, thresholds and per-slice gaps: the promotion gate.

Plain functions over arrays and DataFrames, no Dagster and no MLflow, so the gate's logic is
tested on its own and reads the same in a notebook. scikit-learn is imported when a metric is
computed, not when the catalogue is read (model.yaml validation needs only the catalogue).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METRICS",
    "GateVerdict",
    "Metric",
    "compute_metrics",
    "decide",
    "improvement",
    "improvement_needed",
    "predict_with_scores",
    "slice_report",
]

Direction = Literal["maximize", "minimize"]
Task = Literal["regression", "classification"]


@dataclass(frozen=True)
class Metric:
    name: str
    task: Task
    direction: Direction
    needs_scores: bool = False  # computed from predict_proba's positive-class column

    def score(self, y_true: Any, y_pred: Any, y_score: Any | None) -> float:
        """The metric, or NaN where it is undefined: no scores, or (for the score metrics)
        a single class in y_true, as a small window of live labels often has."""
        fn = _sklearn_metric(self.name)
        if self.needs_scores:
            if y_score is None or len(set(_values(y_true))) < 2:
                return math.nan
            return float(fn(y_true, y_score))
        return float(fn(y_true, y_pred))


def _values(column: Any) -> list[Any]:
    return column.tolist() if hasattr(column, "tolist") else list(column)


def _sklearn_metric(name: str) -> Callable[..., float]:
    from sklearn import metrics as m

    def rmse(y_true: Any, y_pred: Any) -> float:
        return float(m.mean_squared_error(y_true, y_pred) ** 0.5)

    return {
        "mae": m.mean_absolute_error,
        "rmse": rmse,
        "r2": m.r2_score,
        "mape": m.mean_absolute_percentage_error,
        "accuracy": m.accuracy_score,
        "balanced_accuracy": m.balanced_accuracy_score,
        "f1": m.f1_score,
        "precision": m.precision_score,
        "recall": m.recall_score,
        "roc_auc": m.roc_auc_score,
        "log_loss": m.log_loss,
    }[name]


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in [
        Metric("mae", "regression", "minimize"),
        Metric("rmse", "regression", "minimize"),
        Metric("r2", "regression", "maximize"),
        Metric("mape", "regression", "minimize"),
        Metric("accuracy", "classification", "maximize"),
        Metric("balanced_accuracy", "classification", "maximize"),
        Metric("f1", "classification", "maximize"),
        Metric("precision", "classification", "maximize"),
        Metric("recall", "classification", "maximize"),
        Metric("roc_auc", "classification", "maximize", needs_scores=True),
        Metric("log_loss", "classification", "minimize", needs_scores=True),
    ]
}


def compute_metrics(
    task: Task, y_true: Any, y_pred: Any, y_score: Any | None = None
) -> dict[str, float]:
    """Every standard metric of the task, so all models are comparable side by side.

    y_score is the positive-class probability (binary classification); metrics that need it
    are left out when the estimator has no predict_proba.
    """
    scores = {}
    for metric in METRICS.values():
        if metric.task != task:
            continue
        value = metric.score(y_true, y_pred, y_score)
        if not math.isnan(value):
            scores[metric.name] = value
    return scores


def predict_with_scores(estimator: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions, plus the positive-class probability for binary classifiers that have one."""
    y_pred = estimator.predict(X)
    y_score = None
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        if proba.ndim == 2 and proba.shape[1] == 2:
            y_score = proba[:, 1]
    return y_pred, y_score


def improvement(candidate: float, champion: float, direction: Direction) -> float:
    """Relative improvement of the candidate over the champion; positive means better."""
    gain = candidate - champion if direction == "maximize" else champion - candidate
    return gain / max(abs(champion), 1e-12)


def slice_report(
    frame: pd.DataFrame, by: list[str], metric: Metric, overall: float, min_rows: int
) -> pd.DataFrame:
    """Metric per slice and its relative gap from the overall value.

    frame holds the columns in `by` plus y_true, y_pred and (optionally) y_score. Slices with
    fewer than min_rows rows are reported but not judged: their metric is mostly noise.
    """
    import pandas as pd

    rows = []
    for keys, group in frame.groupby(by, observed=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        value = metric.score(group["y_true"], group["y_pred"], group.get("y_score", None))
        gap = abs(value - overall) / max(abs(overall), 1e-12)
        rows.append(
            {
                "slice": ", ".join(f"{col}={key}" for col, key in zip(by, keys, strict=True)),
                "rows": len(group),
                metric.name: value,
                "gap": gap,
                "judged": len(group) >= min_rows,
            }
        )
    return pd.DataFrame(rows, columns=["slice", "rows", metric.name, "gap", "judged"])


@dataclass(frozen=True)
class GateVerdict:
    """The promotion gate's decision with its reasons, as shown to people and recorded."""

    passed: bool
    beats_champion: bool
    meets_thresholds: bool
    slices_ok: bool
    reasons: list[str] = field(default_factory=list)
    replay_ok: bool = True

    @property
    def summary(self) -> str:
        if self.passed:
            return "passed: " + "; ".join(self.reasons)
        return "failed: " + "; ".join(r for r in self.reasons if not r.startswith("ok"))


def improvement_needed(min_improvement: float) -> str:
    """The gate's improvement rule in words, as decide() applies it: a gain of at least
    `min_improvement`, and always more than none (so 0 means "strictly better")."""
    if min_improvement == 0:
        return f"more than {min_improvement:.2%}"
    return f"at least {min_improvement:.2%}"


def decide(
    *,
    metric: Metric,
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    min_improvement: float,
    thresholds: Mapping[str, tuple[float | None, float | None]],
    worst_slice_gap: float | None,
    max_gap: float | None,
    replay: tuple[bool, str] | None = None,
) -> GateVerdict:
    """Apply the gate: beat the champion by min_improvement, meet thresholds, keep slices close,
    and (where configured) hold up on the replayed days: `replay` is (passed, reason).

    Without a champion the first comparison passes: the first good model becomes champion.
    """
    reasons = []
    score = candidate[metric.name]

    if champion is None:
        beats = True
        reasons.append(f"ok: no champion yet; candidate {metric.name}={score:.4g}")
    else:
        gain = improvement(score, champion[metric.name], metric.direction)
        beats = gain >= min_improvement and gain > 0
        verb = "ok" if beats else "worse"
        reasons.append(
            f"{verb}: {metric.name} {score:.4g} vs champion {champion[metric.name]:.4g} "
            f"({gain:+.2%}, needs {improvement_needed(min_improvement)})"
        )

    meets = True
    for name, (low, high) in thresholds.items():
        value = candidate.get(name)
        if value is None:
            meets = False
            reasons.append(f"threshold: {name} was not computed for this model")
        elif low is not None and value < low:
            meets = False
            reasons.append(f"threshold: {name} {value:.4g} is below min {low:.4g}")
        elif high is not None and value > high:
            meets = False
            reasons.append(f"threshold: {name} {value:.4g} is above max {high:.4g}")
    if thresholds and meets:
        reasons.append(f"ok: thresholds met ({', '.join(thresholds)})")

    slices_ok = True
    if max_gap is not None and worst_slice_gap is not None:
        slices_ok = worst_slice_gap <= max_gap
        verb = "ok" if slices_ok else "slices"
        reasons.append(f"{verb}: worst slice gap {worst_slice_gap:.2%} (max {max_gap:.2%})")

    replay_ok = True
    if replay is not None:
        replay_ok, reason = replay
        reasons.append(reason)

    return GateVerdict(
        passed=beats and meets and slices_ok and replay_ok,
        beats_champion=beats,
        meets_thresholds=meets,
        slices_ok=slices_ok,
        reasons=reasons,
        replay_ok=replay_ok,
    )
