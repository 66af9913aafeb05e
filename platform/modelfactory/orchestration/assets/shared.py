"""What every step module of the asset factory shares: the steps' names, the job names, and
`Graph`, one model project's keys and the attributes all its assets carry.

Kept apart from the package's `__init__` so the step modules import it, never the package
that composes them (no import cycle inside the package).
"""

from dataclasses import dataclass
from typing import Any

from dagster import AssetKey, Failure, FreshnessPolicy

from modelfactory.errors import ProjectError
from modelfactory.ml import gate
from modelfactory.orchestration.partitions import partitions_def
from modelfactory.orchestration.run_tags import model_pool
from modelfactory.orchestration.schedules import freshness_policies
from modelfactory.project.loader import ModelProject
from modelfactory.project.spec import ModelSpec

__all__ = [
    "SIDE_STEPS",
    "STEPS",
    "Graph",
    "drift_report_job_name",
    "live_metrics_job_name",
    "predict_job_name",
    "refresh_job_name",
    "scored",
    "train_job_name",
]

STEPS = (
    "raw",
    "features",
    "split",
    "candidate",
    "evaluation",
    "champion",
    "endpoint",
    "model_card",
)
SIDE_STEPS = ("predictions", "drift_report", "live_metrics")  # not part of a retrain


def train_job_name(model: str) -> str:
    return f"{model}_train"


def drift_report_job_name(model: str) -> str:
    return f"{model}_drift_report"


def predict_job_name(model: str) -> str:
    return f"{model}_predict"


def live_metrics_job_name(model: str) -> str:
    return f"{model}_live_metrics"


def refresh_job_name(model: str) -> str:
    return f"{model}_refresh"


@dataclass(frozen=True)
class Graph:
    """One model project as its assets see it: keys `<model>/<step>`, the attributes every
    asset carries (`common`: group, owners, tags, pool, code version, partitions), the
    warehouse's partition column (`stored`) and the freshness the schedules promise."""

    project: ModelProject
    key: dict[str, AssetKey]
    common: dict[str, Any]
    stored: dict[str, str]
    fresh: dict[str, FreshnessPolicy]

    @property
    def spec(self) -> ModelSpec:
        return self.project.spec

    @classmethod
    def of(cls, project: ModelProject) -> "Graph":
        spec = project.spec
        name = spec.name
        common: dict[str, Any] = {
            "group_name": name,
            "owners": [spec.owner],
            "tags": {"modelfactory/model": name, "modelfactory/task": spec.task},
            "pool": model_pool(name),  # one run of a model at a time, from the UI too
            "code_version": project.code_version,
            "partitions_def": partitions_def(spec),  # one partition per segment, if segmented
        }
        return cls(
            project=project,
            key={step: AssetKey([name, step]) for step in STEPS + SIDE_STEPS},
            common=common,
            # The warehouse replaces one segment's rows at a time, selected by this column.
            stored={"partition_expr": spec.segments.by} if spec.segments else {},
            # From the schedules; none for an unscheduled model.
            fresh=freshness_policies(spec),
        )


def scored(spec: ModelSpec, estimator: Any, X: Any, y: Any, *, slices: bool = True) -> gate.Scored:
    """gate.score, with a project's mistake (a metric it cannot compute) as a Failure."""
    try:
        return gate.score(spec, estimator, X, y, slices=slices)
    except ProjectError as exc:
        raise Failure(str(exc)) from None
