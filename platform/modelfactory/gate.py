"""One model spec's promotion gate on a holdout: score an estimator, then judge it.

The `<model>/candidate` and `<model>/evaluation` assets run these, and so do the contract
tests (testing.py) on a small sample, so a project that passes `modelfactory check` does
not fail in `modelfactory train` on the metric, slice or gate path. No Dagster and no
MLflow here: the estimator is already loaded, the champion's scores already computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelfactory.errors import ProjectError
from modelfactory.evaluation import (
    METRICS,
    GateVerdict,
    Predicted,
    compute_metrics,
    decide,
    per_class,
    predict_with_scores,
    slice_report,
)

if TYPE_CHECKING:
    import pandas as pd

    from modelfactory.spec import ModelSpec

__all__ = ["Scored", "judge", "score"]


@dataclass(frozen=True)
class Scored:
    """An estimator's predictions on some rows, every metric of the task on them, and (on a
    holdout) a classifier's scores per class and, where promotion.slices is set, the metric
    per slice."""

    predicted: Predicted
    scores: dict[str, float]
    slices: pd.DataFrame | None = None
    per_class: pd.DataFrame | None = None

    @property
    def worst_gap(self) -> float | None:
        """The largest gap of a judged slice (one with at least min_rows rows), if any."""
        if self.slices is None:
            return None
        judged = self.slices[self.slices["judged"]]
        return float(judged["gap"].max()) if len(judged) else None


def score(
    spec: ModelSpec, estimator: Any, X: pd.DataFrame, y: pd.Series, *, slices: bool = True
) -> Scored:
    """Predict X, compute every metric of spec.task against y; with `slices` (a holdout),
    the per-class table of a classifier and the slice report of promotion.slices.

    The spec's own metric must be among the scores: the gate compares on it, so a model that
    cannot compute it (roc_auc without predict_proba) is refused here, saying so.
    """
    predicted = predict_with_scores(estimator, X)
    y_pred = predicted.labels
    scores = compute_metrics(spec.task, y, y_pred, predicted.proba, predicted.classes)
    metric = METRICS[spec.metric.name]
    if metric.name not in scores:
        needs = " from predict_proba" if metric.needs_scores else ""
        raise ProjectError(
            f"{spec.name}: model.yaml metric {metric.name!r} could not be computed{needs} on "
            f"{len(y)} rows ({type(estimator).__name__}); pick a metric this model can score "
            f"(computed: {', '.join(scores) or 'none'})"
        )
    if not slices:
        return Scored(predicted, scores)
    classes = per_class(y, y_pred, predicted.classes) if spec.task == "classification" else None
    report = None
    if spec.promotion.slices is not None:
        by = spec.promotion.slices.by
        missing = [column for column in by if column not in X.columns]
        if missing:
            raise ProjectError(
                f"{spec.name}: model.yaml promotion.slices.by names "
                f"{', '.join(map(repr, missing))}, not among the model's inputs "
                f"({', '.join(map(str, X.columns))}); slice by "
                "input columns (the target and split.by are not inputs)"
            )
        frame = X[by].assign(y_true=y, y_pred=y_pred)
        minimum = spec.promotion.slices.min_rows
        report = slice_report(frame, by, metric, scores[metric.name], minimum, predicted)
    return Scored(predicted, scores, report, classes)


def judge(
    spec: ModelSpec,
    candidate: Scored,
    champion_scores: dict[str, float] | None,
    replay: tuple[bool, str] | None = None,
) -> GateVerdict:
    """The gate of model.yaml's promotion section on the candidate's holdout scores."""
    promotion = spec.promotion
    return decide(
        metric=METRICS[spec.metric.name],
        candidate=candidate.scores,
        champion=champion_scores,
        min_improvement=promotion.min_improvement,
        thresholds={k: (b.min, b.max) for k, b in promotion.thresholds.items()},
        worst_slice_gap=candidate.worst_gap,
        max_gap=promotion.slices.max_gap if promotion.slices else None,
        replay=replay,
    )
