"""Metrics, the champion comparison, thresholds and per-slice gaps: the promotion gate.

Plain functions over arrays and DataFrames, no Dagster and no MLflow, so the gate's logic is
tested on its own and reads the same in a notebook. scikit-learn is imported when a metric is
computed, not when the catalogue is read (model.yaml validation needs only the catalogue).

Classification metrics know the model's classes (`estimator.classes_`, sorted as sklearn
sorts the labels: integers, booleans or strings alike):
- binary: `f1`, `precision` and `recall` are those of the positive class, `classes_[1]`
  (1, True, or the second label in sorted order), as sklearn's `pos_label` means; `roc_auc`
  is computed from the positive class's probability.
- multiclass: `f1`, `precision` and `recall` are macro averages (every class counts the same),
  the same numbers as `f1_macro` etc.; `roc_auc` is one-vs-rest, macro averaged.
- both: `*_macro` and `*_weighted` (weighted by each class's support), `balanced_accuracy`,
  and `log_loss` from the full probability matrix with `labels=classes_`.
A metric undefined on the rows at hand (one class in a small live window) is NaN and left
out of `compute_metrics`; so are the metrics computed against the classes (the score metrics
and plain f1/precision/recall) when y_true holds a label that is none of them.
`per_class` gives precision, recall, f1 and support per class.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from modelfactory.project.metrics import CATALOGUE, Direction, MetricName, Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Deferred imports: numpy, pandas and scikit-learn load with the first score: the endpoint
# imports this module at start, before any model is loaded.

__all__ = [
    "METRICS",
    "GateVerdict",
    "Metric",
    "Predicted",
    "compute_metrics",
    "decide",
    "improvement",
    "improvement_needed",
    "per_class",
    "predict_with_scores",
    "slice_report",
    "unknown_labels",
]

Average = Literal["binary", "macro", "weighted"]


class Metric(MetricName):
    """A catalogued metric (project/metrics.py) with its computation."""

    def score(
        self,
        y_true: Any,
        y_pred: Any,
        y_score: Any | None = None,
        classes: Sequence[Any] | None = None,
    ) -> float:
        """The metric, or NaN where it is undefined: no scores, or (for the score metrics)
        a single class in y_true, as a small window of live labels often has.

        y_score is the positive-class probability (binary) or the probability matrix, its
        columns in the order of `classes` (the estimator's `classes_`); without `classes`
        the labels seen in y_true and y_pred, sorted, stand for them.
        """
        if self.task == "regression":
            return float(_regression_metric(self.name)(y_true, y_pred))
        if classes is not None and self.needs_classes and unknown_labels(y_true, classes):
            return math.nan  # which class is positive, which probability column is whose?
        labels = _classes(classes, y_true, y_pred)
        if self.needs_scores:
            return _score_metric(self.name, y_true, y_score, labels)
        return _label_metric(self.name, y_true, y_pred, labels)


def _values(column: Any) -> list[Any]:
    return column.tolist() if hasattr(column, "tolist") else list(column)


def unknown_labels(y_true: Any, classes: Sequence[Any]) -> list[Any]:
    """The labels of y_true that are none of the model's classes (a class it never saw in
    training, or a label spelled otherwise: `adelie` for `Adelie`), in order of appearance."""
    known = set(_values(classes))
    return list(dict.fromkeys(label for label in _values(y_true) if label not in known))


def _classes(classes: Sequence[Any] | None, y_true: Any, y_pred: Any) -> list[Any]:
    if classes is not None:
        return list(classes)
    seen = set(_values(y_true)) | set(_values(y_pred))
    return sorted(seen, key=lambda label: (str(type(label)), label))


def _regression_metric(name: str) -> Callable[..., float]:
    from sklearn import metrics as m

    def rmse(y_true: Any, y_pred: Any) -> float:
        return float(m.mean_squared_error(y_true, y_pred) ** 0.5)

    return {
        "mae": m.mean_absolute_error,
        "rmse": rmse,
        "r2": m.r2_score,
        "mape": m.mean_absolute_percentage_error,
    }[name]


def _label_metric(name: str, y_true: Any, y_pred: Any, classes: list[Any]) -> float:
    from sklearn import metrics as m

    if name == "accuracy":
        return float(m.accuracy_score(y_true, y_pred))
    if name == "balanced_accuracy":
        with warnings.catch_warnings():  # one class in a slice or window: its recall, as meant
            warnings.filterwarnings("ignore", "A single label was found", UserWarning)
            return float(m.balanced_accuracy_score(y_true, y_pred))
    base, _, average = name.partition("_")
    if not average:  # plain f1/precision/recall: the positive class's, or macro (multiclass)
        if len(classes) < 2:  # one label seen and no classes given: which one is positive?
            return math.nan
        average = "binary" if len(classes) == 2 else "macro"
    fn = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[base]
    if average == "binary":
        return float(fn(y_true, y_pred, labels=classes, pos_label=classes[1], average="binary"))
    # Macro and weighted: over the classes among the rows (one absent from a small window
    # would count as a zero in a macro average; in a weighted one it weighs nothing).
    return float(fn(y_true, y_pred, average=average))


def _score_metric(name: str, y_true: Any, y_score: Any | None, classes: list[Any]) -> float:
    import numpy as np
    from sklearn import metrics as m

    if y_score is None:
        return math.nan
    truth = _values(y_true)
    present = set(truth)
    scores = np.asarray(y_score, dtype=float)
    if scores.ndim == 1:  # the positive class's probability alone: binary
        if len(classes) != 2:
            return math.nan
        scores = np.column_stack([1 - scores, scores])
    if scores.shape[1] != len(classes):
        return math.nan
    # sklearn reads probability columns as the sorted labels (classes_ is sorted already).
    order = sorted(range(len(classes)), key=lambda i: classes[i])
    classes, scores = [classes[i] for i in order], scores[:, order]
    if name == "log_loss":
        return float(m.log_loss(truth, scores, labels=classes))
    if len(present) < 2:
        return math.nan
    if len(classes) == 2:
        positive = [label == classes[1] for label in truth]
        return float(m.roc_auc_score(positive, scores[:, 1]))
    if not present >= set(classes):  # one-vs-rest needs every class among the labels
        return math.nan
    return float(m.roc_auc_score(truth, scores, multi_class="ovr", average="macro", labels=classes))


# Every metric model.yaml may name, computable: the catalogue's entries with their score.
METRICS: dict[str, Metric] = {
    name: Metric(entry.name, entry.task, entry.direction, entry.needs_scores)
    for name, entry in CATALOGUE.items()
}


def compute_metrics(
    task: Task,
    y_true: Any,
    y_pred: Any,
    y_score: Any | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Every standard metric of the task, so all models are comparable side by side.

    y_score is the probability matrix (columns in the order of `classes`) or, for a binary
    classifier, the positive-class probability; metrics that need it are left out when the
    estimator has no predict_proba.
    """
    scores = {}
    for metric in METRICS.values():
        if metric.task != task:
            continue
        value = metric.score(y_true, y_pred, y_score, classes)
        if not math.isnan(value):
            scores[metric.name] = value
    return scores


def per_class(y_true: Any, y_pred: Any, classes: Sequence[Any] | None = None) -> pd.DataFrame:
    """Precision, recall, f1 and support of each class (one row per class, in `classes`
    order); a precision or f1 that is undefined (a class never predicted, or absent) is NaN."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    labels = _classes(classes, y_true, y_pred)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=np.nan
    )
    return pd.DataFrame(
        {
            "class": [str(label) for label in labels],
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support.astype(int),
        }
    )


@dataclass(frozen=True)
class Predicted:
    """An estimator's predictions with what the metrics need: the labels, and for a
    classifier with predict_proba the probability matrix, its columns in `classes` order."""

    labels: np.ndarray
    proba: np.ndarray | None = None
    classes: list[Any] | None = None  # estimator.classes_ as Python values

    @property
    def score(self) -> np.ndarray | None:
        """The positive class's probability (binary classifiers), the scores column kept
        beside each prediction in the inference log and batch predictions."""
        if self.proba is None or self.proba.shape[1] != 2:
            return None
        return self.proba[:, 1]

    def take(self, positions: Any) -> Predicted:
        """The same predictions for a subset of rows (by position), e.g. one slice."""
        proba = self.proba[positions] if self.proba is not None else None
        return Predicted(self.labels[positions], proba, self.classes)


def predict_with_scores(estimator: Any, X: pd.DataFrame) -> Predicted:
    """Predictions, plus every class's probability for classifiers that have predict_proba."""
    import numpy as np

    labels = np.asarray(estimator.predict(X))
    classes = getattr(estimator, "classes_", None)
    if classes is None or not hasattr(estimator, "predict_proba"):
        return Predicted(labels)
    proba = np.asarray(estimator.predict_proba(X), dtype=float)
    return Predicted(labels, proba, np.asarray(classes).tolist())


def improvement(candidate: float, champion: float, direction: Direction) -> float:
    """Relative improvement of the candidate over the champion; positive means better."""
    gain = candidate - champion if direction == "maximize" else champion - candidate
    return gain / max(abs(champion), 1e-12)


def slice_report(
    frame: pd.DataFrame,
    by: list[str],
    metric: Metric,
    overall: float,
    min_rows: int,
    predicted: Predicted | None = None,
) -> pd.DataFrame:
    """Metric per slice and its relative gap from the overall value.

    frame holds the columns in `by` plus y_true and y_pred, and optionally y_score (a binary
    classifier's positive-class probability); `predicted`, aligned with frame's rows by
    position, gives the probability matrix and classes instead. Slices with fewer than
    min_rows rows are reported but not judged: their metric is mostly noise.
    """
    import numpy as np
    import pandas as pd

    frame = frame.reset_index(drop=True)
    classes = predicted.classes if predicted is not None else None
    rows = []
    for keys, group in frame.groupby(by, observed=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        if predicted is not None and predicted.proba is not None:
            y_score = predicted.proba[np.asarray(group.index)]
        else:
            y_score = group.get("y_score", None)
        value = metric.score(group["y_true"], group["y_pred"], y_score, classes)
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
