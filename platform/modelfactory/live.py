"""Live metrics: how each served version does on real traffic, once its labels arrive.

Labels come late (a day's sales are known the day after their forecast), as files dropped
under `$MODELFACTORY_HOME/labels/<model>/`: CSV or Parquet with the `request_id` and
`row_index` the endpoint answered with, and the target column. They are joined with the
inference log, the metric is computed per version, and the champion's live metric is held
against the one it showed on the holdout when it was promoted: a drop beyond
`live_metric.tolerance` retrains the model.

Plain functions over DataFrames; the sensor and the `<model>/live_metrics` asset call them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelfactory.evaluation import METRICS, Task, compute_metrics, improvement

if TYPE_CHECKING:
    import pandas as pd

    from modelfactory.spec import LiveMetricSpec

__all__ = [
    "LabelFiles",
    "LiveVerdict",
    "champion_holdout",
    "compare_versions",
    "find_labels",
    "judge",
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

    `labelled` has model_version, prediction, score and label (see capture.read_labelled).
    """
    import pandas as pd

    rows = []
    for version, group in labelled.groupby("model_version", sort=True):
        metrics = _metrics(group, task)
        rows.append({"model_version": str(version), "labelled_rows": len(group), **metrics})
    return pd.DataFrame(rows)


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
    scores = rows["score"] if rows["score"].notna().all() else None
    return compute_metrics(task, rows["label"], rows["prediction"], scores)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
