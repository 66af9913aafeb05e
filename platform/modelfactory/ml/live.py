"""Live metrics: how each served version does on real traffic, once its labels arrive.

Labels come late (a day's sales are known the day after their forecast), as files dropped
under `$MODELFACTORY_HOME/labels/<model>/`: CSV or Parquet with the `request_id` and
`row_index` the endpoint answered with, and the target column. They are joined with the
inference log, the metric is computed per version, and the champion's live metric is held
against the one it showed on the holdout when it was promoted: a drop beyond
`live_metric.tolerance` retrains the model.

For a classifier the labels are compared as the model's own label type (a file may hold
`1` where the model answers `True`, or `Adelie` read back as text), the classes and their
probabilities come from what the endpoint answered, and the metrics are the class-aware set
of evaluation.py, with precision, recall and f1 per class beside them (`version_classes`).
A label that is none of the model's classes (`adelie` for `Adelie`, a class it was never
trained on, `yes` for a model answering True/False) is a LabelsError naming it and its file:
the sensor says so once, as for a file it cannot read, rather than guess a metric.

Plain functions over DataFrames; the sensor and the `<model>/live_metrics` asset call them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfactory.errors import LabelsError
from modelfactory.ml.evaluation import (
    METRICS,
    Task,
    compute_metrics,
    improvement,
    per_class,
    unknown_labels,
)

if TYPE_CHECKING:
    import pandas as pd

    from modelfactory.project.spec import LiveMetricSpec

# Deferred imports: numpy and pandas load with the first labels read: the endpoint imports this
# module at start.

__all__ = [
    "LabelFiles",
    "LiveVerdict",
    "champion_holdout",
    "classified",
    "compare_versions",
    "find_labels",
    "judge",
    "version_classes",
    "version_metrics",
]

LABEL_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class LabelFiles:
    """The label files present now, and a fingerprint that changes when any of them does."""

    files: list[Path]
    fingerprint: str


def find_labels(directory: Path) -> LabelFiles:
    """Every label file under `directory`, oldest name first; cheap (no file is read)."""
    files = sorted(
        f for f in Path(directory).glob("*") if f.suffix.lower() in LABEL_SUFFIXES and f.is_file()
    )
    digest = hashlib.sha256()
    for f in files:
        stat = f.stat()
        digest.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return LabelFiles(files, digest.hexdigest()[:16] if files else "")


def version_metrics(labelled: pd.DataFrame, task: Task) -> pd.DataFrame:
    """Every standard metric of the task, per model version, from labelled predictions.

    `labelled` has model_version, prediction, score and label (see capture.read_labelled);
    a classifier's label that none of its classes is raises LabelsError.
    """
    import pandas as pd

    rows = []
    for version, group in labelled.groupby("model_version", sort=True):
        metrics = _metrics(group, task)
        rows.append({"model_version": str(version), "labelled_rows": len(group), **metrics})
    return pd.DataFrame(rows)


def version_classes(labelled: pd.DataFrame) -> pd.DataFrame:
    """A classifier's precision, recall, f1 and support per class, per model version, from
    labelled predictions (empty when there are none)."""
    import pandas as pd

    tables = []
    for version, group in labelled.groupby("model_version", sort=True):
        truth, predicted, classes, _ = classified(group)
        table = per_class(truth, predicted, classes)
        tables.append(table.assign(model_version=str(version))[["model_version", *table]])
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


@dataclass(frozen=True)
class LiveVerdict:
    version: str
    metric: str
    rows: int
    live: float | None
    holdout: float | None
    degraded: bool
    reason: str

    def describe(self) -> str:
        return f"v{self.version}: {self.reason}"


def judge(
    labelled: pd.DataFrame,
    *,
    version: str,
    task: Task,
    metric: str,
    holdout: float | None,
    spec: LiveMetricSpec,
) -> LiveVerdict:
    """Has `version`'s live metric fallen behind its holdout metric by more than the tolerance?

    Too few labels, or no holdout metric to compare with, is never a drop: it waits.
    """
    mine = labelled[labelled["model_version"].astype(str) == version].head(spec.window)
    rows = len(mine)
    if rows < spec.min_labels:
        reason = f"{rows}/{spec.min_labels} labelled rows so far"
        return LiveVerdict(version, metric, rows, None, holdout, False, reason)
    live = _metrics(mine, task).get(metric)
    if live is None or holdout is None:
        reason = f"live {metric} {_fmt(live)} on {rows} rows, no holdout {metric} to compare"
        return LiveVerdict(version, metric, rows, live, holdout, False, reason)
    change = improvement(live, holdout, METRICS[metric].direction)  # negative: worse
    degraded = -change > spec.tolerance
    reason = (
        f"live {metric} {live:.4g} vs {holdout:.4g} on the holdout "
        f"({abs(change):.0%} {'worse' if change < 0 else 'better'}, "
        f"tolerance {spec.tolerance:.0%}) on {rows} labelled rows"
    )
    return LiveVerdict(version, metric, rows, live, holdout, degraded, reason)


def compare_versions(
    labelled: pd.DataFrame, *, new: str, old: str, task: Task, metric: str, spec: LiveMetricSpec
) -> str | None:
    """Why `new` must go, if its live metric is worse than `old`'s on rows labelled over the
    same period by more than the tolerance; None when it is not, or labels are too few."""
    scores = {}
    for version in (new, old):
        rows = labelled[labelled["model_version"].astype(str) == version].head(spec.window)
        if len(rows) < spec.min_labels:
            return None
        scores[version] = _metrics(rows, task).get(metric)
    if scores[new] is None or scores[old] is None:
        return None
    change = improvement(scores[new], scores[old], METRICS[metric].direction)
    if -change <= spec.tolerance:
        return None
    return (
        f"v{new} live {metric} {scores[new]:.4g} vs v{old} {scores[old]:.4g} on labelled "
        f"rows ({-change:.0%} worse, tolerance {spec.tolerance:.0%})"
    )


def champion_holdout(tags: dict[str, str], metric: str) -> float | None:
    """The holdout metric a version was promoted on (recorded by `<model>/evaluation`)."""
    value = tags.get(f"mf.holdout.{metric}")
    return float(value) if value is not None else None


def _metrics(rows: pd.DataFrame, task: Task) -> dict[str, float]:
    """Every metric of the task on labelled rows; the score metrics only where every row has a
    score (a version that answered some rows without one is not judged on them)."""
    if task == "regression":
        return compute_metrics(task, rows["label"].astype(float), rows["prediction"])
    truth, predicted, classes, scores = classified(rows)
    return compute_metrics(task, truth, predicted, scores, classes)


def classified(rows: pd.DataFrame) -> tuple[list[Any], list[Any], list[Any] | None, Any]:
    """A classifier's labelled rows as (truth, predictions, classes, scores), the truth in
    the type of the model's labels: the probability matrix and its classes where every row
    has probabilities, else the positive-class scores where every row has one. The live
    metrics and the drift report's quality section read labels through it, so a label
    file's "false" or "1.0" means what the model meant."""
    import numpy as np

    predicted = rows["prediction"].tolist()
    like = next((p for p in predicted if p is not None), None)
    truth = [_as_label(value, like) for value in rows["label"].tolist()]
    given = rows["probabilities"].tolist() if "probabilities" in rows else []
    if given and all(isinstance(p, dict) and p for p in given):
        names = list(given[0])
        classes = [_as_label(name, like) for name in names]
        _refuse_unknown(rows, truth, like, classes)
        matrix = np.array([[p.get(name, 0.0) for name in names] for p in given], dtype=float)
        return truth, predicted, classes, matrix
    _refuse_unknown(rows, truth, like, None)
    scores = rows["score"] if rows["score"].notna().all() else None
    return truth, predicted, None, scores


def _refuse_unknown(
    rows: pd.DataFrame, truth: list[Any], like: Any, classes: list[Any] | None
) -> None:
    """LabelsError if a label is none of the model's classes (known from the probabilities
    it answered), or could not be read as its label type (text for a model answering
    numbers or booleans): scored anyway, it would be a wrong metric or sklearn's error."""
    unknown = [label for label in truth if like is not None and not isinstance(label, type(like))]
    if classes is not None:
        unknown += unknown_labels(truth, classes)
    unknown = list(dict.fromkeys(unknown))
    if not unknown:
        return
    version = str(rows["model_version"].iloc[0]) if "model_version" in rows else "?"
    known = f" ({', '.join(map(repr, classes))})" if classes is not None else ""
    raise LabelsError(
        f"labels {', '.join(map(repr, unknown[:10]))} in {_files_with(rows, truth, unknown)} "
        f"are none of the classes model version {version} answers{known}; correct them "
        "(class names are case-sensitive) or retrain on data that has those classes"
    )


def _files_with(rows: pd.DataFrame, truth: list[Any], unknown: list[Any]) -> str:
    """The label files holding the unknown labels (read_labelled says where each came from)."""
    if "label_file" not in rows:
        return "the label files"
    bad = set(unknown)
    files = rows["label_file"].tolist()
    paths = [Path(str(f)) for f, label in zip(files, truth, strict=True) if label in bad]
    names = sorted({p.name for p in paths})
    return f"{paths[0].parent}/{{{', '.join(names)}}}" if len(names) > 1 else str(paths[0])


def _as_label(value: Any, like: Any) -> Any:
    """`value` (from a label file, or a class name kept as text) as the type of `like`, one
    of the model's answers: "1", 1.0 and 1 are the class 1; "true" and 1 are True."""
    if like is None or value is None or type(value) is type(like):
        return value
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if isinstance(like, bool):
        return {"true": True, "1": True, "false": False, "0": False}.get(text.lower(), text)
    if isinstance(like, int):
        try:
            return int(float(text))
        except ValueError:
            return text
    if isinstance(like, float):
        try:
            return float(text)
        except ValueError:
            return text
    return text


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
