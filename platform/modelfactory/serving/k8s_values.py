"""The endpoint's pod size on Kubernetes, derived from the served models' `resources`.

The chart deploy/helm/modelfactory-serving runs `modelfactory serve` as a Deployment; how big
each replica is follows from model.yaml, like the size of every training run does
(orchestration/run_tags.py), so a model's size is changed in one place only. One endpoint
process holds every served model at once, which is what the numbers below account for:

- cpu request: the largest `resources.cpus` of a served model. A request is scored by one
  model at a time, so no model needs more than its own spec gives it; the autoscaler's CPU
  target is a share of this request, and more traffic gets more replicas, not a bigger pod.
  No cpu limit: a throttled endpoint answers late instead of getting another replica.
- memory request: the process itself (FastAPI, pandas, scikit-learn, the MLflow client:
  ~450 MiB measured in issue 19, so 512Mi) plus the largest model's `resources.memory`. A
  model's training pod is an upper bound of what its fitted model holds once loaded, and the
  scheduler must place a replica where at least the largest one fits.
- memory limit: the process plus the sum of every model's memory, the most the replica could
  hold if each model were as big as its training pod; past it the pod is killed and replaced.

`python -m modelfactory.serving.k8s_values [model_projects]` prints these as chart values;
tests/test_helm_serving.py fails when the chart's values.yaml no longer matches the specs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from modelfactory.project.loader import discover_projects
from modelfactory.project.spec import ResourcesSpec

__all__ = ["BASE_MEMORY_MIB", "endpoint_resources", "endpoint_values"]

BASE_MEMORY_MIB = 512  # the endpoint process with its libraries and no model loaded


def endpoint_resources(resources: Sequence[ResourcesSpec]) -> dict[str, dict[str, str]]:
    """The endpoint container's `resources` for models of these specs (module docstring)."""
    if not resources:
        raise ValueError("no model to serve: the endpoint's size follows from its models")
    cpu = max(r.cpus for r in resources)
    largest = max(r.memory_mib for r in resources)
    total = sum(r.memory_mib for r in resources)
    return {
        "requests": {"cpu": f"{round(cpu * 1000)}m", "memory": f"{BASE_MEMORY_MIB + largest}Mi"},
        "limits": {"memory": f"{BASE_MEMORY_MIB + total}Mi"},
    }


def endpoint_values(projects_folder: Path | None = None) -> dict[str, Any]:
    """The chart values (`endpoint.resources`) for every project in `projects_folder`
    (default: the repository's model_projects/); a project that fails to load is an error,
    since the endpoint would not serve it either."""
    projects, broken = discover_projects(projects_folder)
    if broken:
        raise ValueError(f"model projects that do not load: {sorted(broken)}")
    return {"endpoint": {"resources": endpoint_resources([p.spec.resources for p in projects])}}


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(yaml.safe_dump(endpoint_values(folder), sort_keys=False), end="")
