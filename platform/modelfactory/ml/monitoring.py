"""Drift statistics: cheap, vectorised comparisons of live data with the training reference.

The reference is *summarised* once, when a candidate is trained (`profile`): for a numeric
column the edges of its reference deciles, the share of rows in each bin and a quantile
sketch; for a categorical column the share of each category. The summary is a small JSON
document kept with the model version, so a drift check (`compare`) never reloads the
training data and costs one pass of numpy over the current window.

Methods (model.yaml `drift.method`; a column is drifted when its score reaches
`drift.threshold`):

    psi            population stability index over the reference bins / categories
    jensenshannon  Jensen-Shannon distance (base 2, 0..1) over the same bins / categories
    ks             Kolmogorov-Smirnov statistic D (0..1) against the quantile sketch;
                   categorical columns use jensenshannon
    chisquare      1 - p-value of a chi-square test of the current counts against the
                   reference shares (so "higher is more drifted" holds for every method)

The model is drifted when the share of drifted columns exceeds `drift.max_share`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelfactory.project.spec import DriftSpec

# Deferred imports: evidently (~3 s), scipy, numpy and pandas load with the first drift statistic
# or report: the drift sensor imports this module on every code server, and most ticks compute
# nothing.

__all__ = [
    "ColumnDrift",
    "DriftResult",
    "Outcomes",
    "ReferenceProfile",
    "ReportVerdict",
    "as_dict",
    "compare",
    "evidently_quality_report",
    "evidently_report",
    "profile",
    "report_verdict",
]

_EPSILON = 1e-6  # keeps empty bins from sending PSI to infinity
_SKETCH = 101  # quantiles kept per numeric column for KS


@dataclass(frozen=True)
class NumericReference:
    edges: list[float]  # inner bin edges (reference deciles, deduplicated)
    shares: list[float]  # share of reference rows per bin (len(edges) + 1 bins)
    sketch: list[float]  # reference quantiles at 0, 1/100, ..., 1


@dataclass(frozen=True)
class CategoricalReference:
    shares: dict[str, float]  # share of reference rows per category


@dataclass(frozen=True)
class ReferenceProfile:
    rows: int
    numeric: dict[str, NumericReference] = field(default_factory=dict)
    categorical: dict[str, CategoricalReference] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        data = json.loads(text)
        return cls(
            rows=data["rows"],
            numeric={k: NumericReference(**v) for k, v in data["numeric"].items()},
            categorical={k: CategoricalReference(**v) for k, v in data["categorical"].items()},
        )


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # numeric | categorical
    method: str
    score: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    columns: list[ColumnDrift]
    rows: int
    max_share: float

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def drifted(self) -> bool:
        return self.share > self.max_share

    def describe(self) -> str:
        if not self.drifted_columns:
            return f"no drift in {len(self.columns)} columns over {self.rows} rows"
        worst = max(self.columns, key=lambda c: c.score)
        return (
            f"{len(self.drifted_columns)}/{len(self.columns)} columns drifted "
            f"({self.share:.0%}, limit {self.max_share:.0%}) over {self.rows} rows; "
            f"worst {worst.column} {worst.method}={worst.score:.3g}"
        )


def profile(frame: pd.DataFrame, bins: int = 10) -> ReferenceProfile:
    """Summarise a reference frame: numeric columns by quantile bins, the rest by category."""
    import numpy as np
    import pandas as pd

    numeric, categorical = {}, {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            data = values.to_numpy(dtype=float)
            data = data[np.isfinite(data)]
            inner = np.quantile(data, np.linspace(0, 1, bins + 1)[1:-1]) if len(data) else []
            edges = np.unique(inner)
            numeric[str(column)] = NumericReference(
                edges=edges.tolist(),
                shares=_shares(np.searchsorted(edges, data, side="right"), len(edges) + 1),
                sketch=np.quantile(data, np.linspace(0, 1, _SKETCH)).tolist() if len(data) else [],
            )
        elif not pd.api.types.is_datetime64_any_dtype(values):
            shares = values.astype(str).value_counts(normalize=True)
            categorical[str(column)] = CategoricalReference(
                shares={str(k): float(v) for k, v in shares.items()}
            )
    return ReferenceProfile(rows=len(frame), numeric=numeric, categorical=categorical)


def compare(reference: ReferenceProfile, current: pd.DataFrame, spec: DriftSpec) -> DriftResult:
    """Score every reference column present in `current` against the reference."""
    import numpy as np

    results = []
    for column, ref in reference.numeric.items():
        if column not in current.columns:
            continue
        data = current[column].to_numpy(dtype=float)
        data = data[np.isfinite(data)]
        if spec.method == "ks":
            score = _ks(np.asarray(ref.sketch), data)
        else:
            bins = np.searchsorted(np.asarray(ref.edges), data, side="right")
            counts = np.bincount(bins, minlength=len(ref.shares))
            score = _score(spec.method, np.asarray(ref.shares), counts)
        results.append(_verdict(column, "numeric", spec, score))
    for column, ref in reference.categorical.items():
        if column not in current.columns:
            continue
        categories = list(ref.shares)
        observed = current[column].astype(str).value_counts()
        unseen = float(observed.drop(labels=categories, errors="ignore").sum())
        counts = np.array([float(observed.get(c, 0)) for c in categories] + [unseen])
        expected = np.array([ref.shares[c] for c in categories] + [0.0])
        method = "jensenshannon" if spec.method == "ks" else spec.method
        results.append(_verdict(column, "categorical", spec, _score(method, expected, counts)))
    return DriftResult(columns=results, rows=len(current), max_share=spec.max_share)


def _verdict(column: str, kind: str, spec: DriftSpec, score: float) -> ColumnDrift:
    method = "jensenshannon" if spec.method == "ks" and kind == "categorical" else spec.method
    return ColumnDrift(column, kind, method, float(score), bool(score >= spec.threshold))


def _shares(bin_index: np.ndarray, n_bins: int) -> list[float]:
    import numpy as np

    counts = np.bincount(bin_index, minlength=n_bins).astype(float)
    return (counts / max(counts.sum(), 1.0)).tolist()


def _score(method: str, expected_shares: np.ndarray, counts: np.ndarray) -> float:
    import numpy as np

    total = counts.sum()
    if total == 0:
        return 0.0
    actual = counts / total
    expected = np.asarray(expected_shares, dtype=float)
    if method == "psi":
        e, a = np.clip(expected, _EPSILON, None), np.clip(actual, _EPSILON, None)
        return float(np.sum((a - e) * np.log(a / e)))
    if method == "jensenshannon":
        from scipy.spatial.distance import jensenshannon

        return float(jensenshannon(expected, actual, base=2))
    if method == "chisquare":
        from scipy.stats import chisquare

        e = np.clip(expected, _EPSILON, None)
        return float(1.0 - chisquare(counts, f_exp=e / e.sum() * total).pvalue)
    raise ValueError(f"unknown drift method {method!r}")


def _ks(sketch: np.ndarray, data: np.ndarray) -> float:
    """KS statistic between the current sample and the reference's quantile sketch."""
    import numpy as np

    if not len(data) or not len(sketch):
        return 0.0
    points = np.union1d(sketch, np.quantile(data, np.linspace(0, 1, _SKETCH)))
    reference_cdf = np.interp(points, sketch, np.linspace(0, 1, len(sketch)), left=0, right=1)
    current_cdf = np.searchsorted(np.sort(data), points, side="right") / len(data)
    return float(np.max(np.abs(current_cdf - reference_cdf)))


def as_dict(result: DriftResult) -> dict[str, Any]:
    """For metadata and reports: the per-column table and the overall verdict."""
    return {
        "drifted": result.drifted,
        "share": result.share,
        "rows": result.rows,
        "columns": [asdict(c) for c in result.columns],
    }


@dataclass(frozen=True)
class Outcomes:
    """Which columns of a report's frames are what the model said and what happened.

    With them, the Evidently report adds the task's quality preset (regression errors, or
    the classification metrics) to the input drift. A classifier's `classes` are its
    estimator's `classes_` (the positive class last, as scikit-learn orders a binary
    model's); `probabilities` names one column per class, each named as its class (as
    Evidently reads a multiclass model's probabilities).
    """

    task: str  # regression | classification
    target: str
    prediction: str
    score: str | None = None  # positive-class probability, binary classifiers
    classes: tuple[Any, ...] = ()
    probabilities: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        named = [c for c in (self.target, self.prediction, self.score) if c]
        return [*named, *self.probabilities]


@dataclass(frozen=True)
class ReportVerdict:
    """What an Evidently drift report concluded, read back from its own output."""

    drifted_columns: list[str]
    share: float
    drifted: bool


def evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, path: Path, result: DriftResult, spec: DriftSpec
) -> ReportVerdict:
    """An Evidently data-drift report for people to read, configured from the model's `drift`
    section, saved as standalone HTML (and its JSON beside it, `path` with `.json`).

    It must say what the sensor acted on, so it judges with the platform's statistic rather
    than Evidently's own (whose psi, ks and chi-square bin the data differently): each
    column's test is a stattest registered for this report that returns the score `compare`
    gave `result` on the champion's reference profile (Evidently drops missing values before
    a test, where the profile counts them as a category), drifted at `spec.threshold`; the
    dataset verdict is a test that the share of drifted columns stays at most
    `spec.max_share`, the sensor's rule. Evidently draws the distributions of `reference`
    (the training inputs) and `current`. Evidently is imported here only: it costs seconds.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift
    from evidently.tests import lte

    _no_telemetry()
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c.column for c in result.columns]
    methods = _platform_stattests(result)
    definition = DataDefinition(
        numerical_columns=[c.column for c in result.columns if c.kind == "numeric"],
        categorical_columns=[c.column for c in result.columns if c.kind == "categorical"],
    )
    metrics = [
        DriftedColumnsCount(
            columns=columns,
            drift_share=spec.max_share,
            per_column_method=methods,
            threshold=spec.threshold,
            share_tests=[lte(spec.max_share)],  # drifted when the share exceeds max_share
        ),
        *(ValueDrift(column=c, method=methods[c], threshold=spec.threshold) for c in columns),
    ]
    snapshot = Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    snapshot.save_html(str(path))
    snapshot.save_json(str(path.with_suffix(".json")))
    return report_verdict(snapshot.dict())


def report_verdict(report: dict[str, Any]) -> ReportVerdict:
    """The drifted columns and the dataset verdict of a report made by `evidently_report`,
    from its dict (or JSON) output: its failed per-column drift tests and its share test."""
    drifted, share, dataset_drifted = [], 0.0, False
    for metric in report["metrics"]:
        if metric["config"]["type"].endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    for test in report["tests"]:
        failed = str(test["status"]).rsplit(".", 1)[-1] == "FAIL"
        params = test["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift") and failed:
            drifted.append(params["column"])
        elif params["type"].endswith(":DriftedColumnsCount"):
            dataset_drifted = failed
    return ReportVerdict(drifted_columns=drifted, share=share, drifted=dataset_drifted)


def _platform_stattests(result: DriftResult) -> dict[str, str]:
    """Register, under names unique to `result`, one Evidently stattest per column that
    answers the platform's score and verdict for it; column -> stattest name."""
    from evidently.legacy.calculations.stattests import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    token = hashlib.sha256(json.dumps(as_dict(result), sort_keys=True).encode()).hexdigest()[:12]
    names = {}
    for index, drift in enumerate(result.columns):
        name = f"modelfactory_{drift.method}_{token}_{index}"

        def judged(_reference: Any, _current: Any, _type: Any, _threshold: Any, drift=drift):
            return drift.score, drift.drifted

        register_stattest(
            StatTest(
                name=name,
                display_name=f"{drift.method} (Model Factory, champion's reference profile)",
                allowed_feature_types=[ColumnType.Numerical, ColumnType.Categorical],
            ),
            judged,
        )
        names[drift.column] = name
    return names


def evidently_quality_report(
    reference: pd.DataFrame, current: pd.DataFrame, path: Path, outcomes: Outcomes
) -> Path:
    """Evidently's regression or classification quality preset: the model on its holdout
    (reference) vs on labelled live rows (current), as a standalone HTML file."""
    from evidently import DataDefinition, Dataset, Regression, Report
    from evidently.presets import ClassificationPreset, RegressionPreset

    _no_telemetry()
    path.parent.mkdir(parents=True, exist_ok=True)
    if outcomes.task == "regression":
        task = {"regression": [Regression(target=outcomes.target, prediction=outcomes.prediction)]}
        quality = RegressionPreset()
    else:
        task, quality = {"classification": [_classification(outcomes)]}, ClassificationPreset()
    columns = outcomes.columns
    definition = DataDefinition(
        numerical_columns=[c for c in columns if reference[c].dtype.kind in "iuf"], **task
    )
    snapshot = Report([quality]).run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    snapshot.save_html(str(path))
    return path


def _classification(outcomes: Outcomes) -> Any:
    """Evidently's task for the classifier: multiclass beyond two classes, else binary with
    the model's positive class (Evidently assumes 1, which a text or boolean label is not).
    Evidently 0.7 cannot score probabilities against boolean labels (its ROC curve calls
    True/False a mix of binary and continuous targets): such a model is judged on labels."""
    import numpy as np
    from evidently import BinaryClassification, MulticlassClassification

    if len(outcomes.classes) > 2:
        return MulticlassClassification(
            target=outcomes.target,
            prediction_labels=outcomes.prediction,
            prediction_probas=list(outcomes.probabilities) or None,
        )
    boolean = any(isinstance(c, bool | np.bool_) for c in outcomes.classes)
    return BinaryClassification(
        target=outcomes.target,
        prediction_labels=outcomes.prediction,
        prediction_probas=None if boolean else outcomes.score,
        pos_label=outcomes.classes[-1] if outcomes.classes else 1,
    )


def _no_telemetry() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's usage telemetry, unless asked
