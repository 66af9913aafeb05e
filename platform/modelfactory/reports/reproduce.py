"""`modelfactory reproduce`: retrain a registered version from what it recorded, and say
whether its holdout metric comes out the same.

What it recorded: the training data snapshot (content-addressed, checked against the
version's data hash), the params of its training run, and the code version. The code is the
project as it is now; when its code version differs from the recorded one the result says
so, since a mismatch may then be the code's doing rather than the data's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelfactory.errors import ProjectError
from modelfactory.ml import datasets, gate
from modelfactory.project.loader import ModelProject
from modelfactory.stores import snapshots
from modelfactory.stores.audit import recorded

__all__ = ["Reproduction", "reproduce"]


@dataclass(frozen=True)
class Reproduction:
    unit: str
    version: str
    metric: str
    recorded: float
    reproduced: float
    tolerance: float  # relative
    same_code: bool
    recorded_code: str
    current_code: str

    @property
    def difference(self) -> float:
        """Relative difference of the reproduced metric from the recorded one."""
        return abs(self.reproduced - self.recorded) / max(abs(self.recorded), 1e-12)

    @property
    def matches(self) -> bool:
        return self.difference <= self.tolerance

    def describe(self) -> str:
        verdict = "matches" if self.matches else "DIFFERS"
        code = (
            "same code"
            if self.same_code
            else f"code changed since (recorded {self.recorded_code}, now {self.current_code})"
        )
        return (
            f"{self.unit} v{self.version}: {self.metric} recorded {self.recorded:.6g}, "
            f"reproduced {self.reproduced:.6g} ({self.difference:.4%} apart, tolerance "
            f"{self.tolerance:.4%}): {verdict}; {code}"
        )


def reproduce(
    project: ModelProject, unit: str, version: str, *, registry: Any, audit: Any, tolerance: float
) -> Reproduction:
    """Retrain `unit`'s `version` on its snapshot with its params; score it on the snapshot's
    holdout with the metric the gate used."""
    found = registry.existing_version(unit, version)
    tags, what, metric = found.tags, f"{unit} v{version}", project.spec.metric.name
    kept = tags.get(f"mf.holdout.{metric}")
    if kept is None:
        raise ProjectError(f"{what}: has no recorded holdout {metric} (it was never evaluated)")
    if "mf.snapshot" not in tags or "mf.data_hash" not in tags:
        raise snapshots.SnapshotError(
            f"{what}: recorded no training data snapshot (it predates them), so it cannot be "
            "reproduced"
        )
    split = snapshots.load(tags["mf.snapshot"], tags["mf.data_hash"], what)
    spec = project.spec
    X, y = datasets.xy(split, spec, "train")
    params = project.params(_params(found, registry, audit))
    estimator = project.function("train", "train")(X, y, params)
    X_test, y_test = datasets.xy(split, spec, "test")
    scores = gate.score(spec, estimator, X_test, y_test, slices=False).scores  # as evaluation
    return Reproduction(
        unit=unit,
        version=version,
        metric=metric,
        recorded=float(kept),
        reproduced=scores[metric],
        tolerance=tolerance,
        same_code=tags.get("mf.code_version") == project.code_version,
        recorded_code=tags.get("mf.code_version", "unknown"),
        current_code=project.code_version,
    )


def _params(version: Any, registry: Any, audit: Any) -> dict[str, Any]:
    params = recorded(version, registry, audit, "params")
    if params is None:
        raise ProjectError(f"{version.model} v{version.version}: no run recorded its params")
    return params
