"""The catalogue of metrics a model.yaml may name: each one's task and direction.

The contract needs only the names (model.yaml validation, `modelfactory new`'s defaults);
ml/evaluation.py gives each of them its computation (`METRICS[name].score(...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CATALOGUE", "Direction", "MetricName", "Task"]

Direction = Literal["maximize", "minimize"]
Task = Literal["regression", "classification"]


@dataclass(frozen=True)
class MetricName:
    """A metric as model.yaml names it: which task it is for, and which way is better."""

    name: str
    task: Task
    direction: Direction
    needs_scores: bool = False  # computed from predict_proba's probabilities

    @property
    def needs_classes(self) -> bool:
        """Computed against the model's classes: the score metrics (a probability column per
        class) and plain f1/precision/recall (the positive class, or all classes)."""
        return self.needs_scores or self.name in {"f1", "precision", "recall"}


def _classification(name: str, direction: Direction = "maximize", **kw: bool) -> MetricName:
    return MetricName(name, "classification", direction, **kw)


CATALOGUE: dict[str, MetricName] = {
    metric.name: metric
    for metric in [
        MetricName("mae", "regression", "minimize"),
        MetricName("rmse", "regression", "minimize"),
        MetricName("r2", "regression", "maximize"),
        MetricName("mape", "regression", "minimize"),
        _classification("accuracy"),
        _classification("balanced_accuracy"),
        *(
            _classification(f"{base}{suffix}")
            for base in ("f1", "precision", "recall")
            for suffix in ("", "_macro", "_weighted")
        ),
        _classification("roc_auc", needs_scores=True),
        _classification("log_loss", "minimize", needs_scores=True),
    ]
}
