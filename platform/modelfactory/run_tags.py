"""The tags every run of a model carries: what it is, how big a pod it gets, when to stop it.

A model's `resources` in model.yaml (cpus, memory, timeout) become the run tags that
Dagster's own launchers read, so the same spec sizes a run on Kubernetes (the K8sRunLauncher
reads `dagster-k8s/config`), on ECS (the EcsRunLauncher reads `ecs/cpu` and `ecs/memory`)
and stops a stuck run anywhere run monitoring is on (`dagster/max_runtime`, in seconds).
The local profile ignores the launcher tags; they cost nothing there.
"""

from __future__ import annotations

import json

from modelfactory.spec import ModelSpec, ResourcesSpec

__all__ = ["MODEL_TAG", "run_tags"]

MODEL_TAG = "modelfactory/model"  # dagster.prod.yaml limits runs per model by this tag


def run_tags(spec: ModelSpec) -> dict[str, str]:
    """The tags of every job of `spec`'s model."""
    resources = spec.resources
    return {
        MODEL_TAG: spec.name,
        "dagster/max_runtime": str(resources.timeout_seconds),
        "dagster-k8s/config": json.dumps(_k8s_config(resources), sort_keys=True),
        "ecs/cpu": str(round(resources.cpus * 1024)),  # ECS counts 1024 units per vCPU
        "ecs/memory": str(mebibytes(resources.memory)),
    }


def mebibytes(memory: str) -> int:
    """`512Mi` or `2Gi` (the spec's forms) in MiB, the unit ECS takes."""
    amount, unit = float(memory[:-2]), memory[-2:]
    return round(amount * (1024 if unit == "Gi" else 1))


def _k8s_config(resources: ResourcesSpec) -> dict:
    # Requests equal limits: the pod gets the Guaranteed QoS class, so a model is never
    # evicted for using what its spec promised it.
    size = {"cpu": f"{round(resources.cpus * 1000)}m", "memory": resources.memory}
    return {"container_config": {"resources": {"requests": size, "limits": dict(size)}}}
