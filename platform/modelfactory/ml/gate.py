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
from modelfactory.ml.evaluation import (
    METRICS,
    GateVerdict,
    Predicted,
    compute_metrics,
    decide,
    per_class,
    predict_with_scores,
    slice_report,
    unknown_labels,
)

if TYPE_CHECKING:
    import pandas as pd

    from modelfactory.project.spec import ModelSpec

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
    cannot compute it (roc_auc without predict_proba) is refused here, saying so. So is a
    holdout holding a class the model never saw in training (a class that only began in the
    latest rows of a time split): its f1 or roc_auc would mean nothing.
    """
    if spec.task == "classification":
        _refuse_unseen_classes(spec, estimator, y)
        _refuse_replay_without_scores(spec, estimator)
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


def _refuse_unseen_classes(spec: ModelSpec, estimator: Any, y: pd.Series) -> None:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return
    classes = classes.tolist() if hasattr(classes, "tolist") else list(classes)
    unseen = unknown_labels(y, classes)
    if not unseen:
        return
    split = spec.split
    how = (
        f"split.by: {split.by} holds out the latest {split.test_size:.0%} of rows"
        if split.by
        else f"the random split (split.test_size: {split.test_size}, seed {split.seed})"
    )
    raise ProjectError(
        f"{spec.name}: the holdout holds {spec.target} classes the model never saw in "
        f"training: {', '.join(map(repr, unseen[:10]))} (it knows "
        f"{', '.join(map(repr, classes[:10]))}); model.yaml's {how}, and no training "
        "row has them. Give the training rows examples of every class (an earlier split, "
        "more data), or drop or merge those classes in build_features"
    )


def _refuse_replay_without_scores(spec: ModelSpec, estimator: Any) -> None:
    """Replay scores each day from the stored batch scores, which keep one probability per
    row (a binary model's positive class): a multiclass model's roc_auc or log_loss is NaN on
    every day, and a NaN day counts for the candidate, so the replay would always pass.
    model.yaml alone cannot tell (the classes are known once trained): refused here."""
    metric = METRICS[spec.metric.name]
    classes = getattr(estimator, "classes_", None)
    if spec.promotion.replay is None or not metric.needs_scores or classes is None:
        return
    if len(classes) <= 2:
        return
    raise ProjectError(
        f"{spec.name}: model.yaml promotion.replay judges each day on metric {metric.name}, "
        f"which needs every class's probability, but the stored batch scores "
        f"({spec.name}/predictions) keep one score per row, the positive class's of a binary "
        f"model; this model has {len(classes)} classes, so no replayed day could be judged. "
        "Pick a label metric for metric.name (f1_macro, balanced_accuracy, accuracy), or "
        "remove promotion.replay"
    )


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
