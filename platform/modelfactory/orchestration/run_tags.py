"""The tags every run of a model carries: what it is, how big a pod it gets, when to stop it.

A model's `resources` in model.yaml (cpus, memory, timeout) become the run tags that
Dagster's own launchers read, so the same spec sizes a run on Kubernetes (the K8sRunLauncher
reads `dagster-k8s/config`), on ECS (the EcsRunLauncher reads `ecs/cpu` and `ecs/memory`)
and stops a stuck run anywhere run monitoring is on (`dagster/max_runtime`, in seconds).
The local profile ignores the launcher tags; they cost nothing there.

ECS on Fargate takes only certain CPU/memory pairs (1 vCPU needs 2-8 GiB, for instance), so
the ECS tags are the smallest Fargate size that holds the spec's; EC2-backed ECS takes them too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from modelfactory.project.spec import ModelSpec, ResourcesSpec

__all__ = ["MODEL_TAG", "fargate_size", "model_pool", "run_tags"]

MODEL_TAG = "modelfactory/model"  # dagster.prod.yaml limits runs per model by this tag

# Fargate's task sizes: CPU units (1024 per vCPU) -> the memory (MiB) allowed with them.
_GIB = 1024
FARGATE_SIZES: dict[int, Sequence[int]] = {
    256: (512, 1 * _GIB, 2 * _GIB),
    512: range(1 * _GIB, 4 * _GIB + 1, _GIB),
    1024: range(2 * _GIB, 8 * _GIB + 1, _GIB),
    2048: range(4 * _GIB, 16 * _GIB + 1, _GIB),
    4096: range(8 * _GIB, 30 * _GIB + 1, _GIB),
    8192: range(16 * _GIB, 60 * _GIB + 1, 4 * _GIB),
    16384: range(32 * _GIB, 120 * _GIB + 1, 8 * _GIB),
}


def run_tags(spec: ModelSpec) -> dict[str, str]:
    """The tags of every job of `spec`'s model."""
    resources = spec.resources
    cpu, memory = fargate_size(resources.cpus, resources.memory_mib)
    return {
        MODEL_TAG: spec.name,
        "dagster/max_runtime": str(resources.timeout_seconds),
        "dagster-k8s/config": json.dumps(_k8s_config(resources), sort_keys=True),
        "ecs/cpu": str(cpu),
        "ecs/memory": str(memory),
    }


def model_pool(model: str) -> str:
    """The concurrency pool of every asset of `model`. The tag limit holds only for runs of
    the model's jobs; a run the UI launches from an asset selection has no job tags, but its
    assets are in the pool, and dagster.yaml's pools (run granularity, limit 1) let one run
    of a model be in progress at a time, however it was launched."""
    return f"modelfactory/{model}"


def fargate_size(cpus: float, memory_mib: int) -> tuple[int, int]:
    """The smallest Fargate (CPU units, MiB) pair holding `cpus` and `memory_mib`; beyond
    Fargate's largest size, the request as it is (only EC2 capacity can place it)."""
    units = round(cpus * 1024)
    for cpu, memories in FARGATE_SIZES.items():
        if cpu < units:
            continue
        fits = [m for m in memories if m >= memory_mib]
        if fits:
            return cpu, fits[0]
    return units, memory_mib


def _k8s_config(resources: ResourcesSpec) -> dict:
    # Requests equal limits: the pod gets the Guaranteed QoS class, so a model is never
    # evicted for using what its spec promised it.
    size = {"cpu": f"{round(resources.cpus * 1000)}m", "memory": resources.memory}
    return {"container_config": {"resources": {"requests": size, "limits": dict(size)}}}
