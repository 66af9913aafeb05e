"""The runs a verdict requests: retrain a model (or one segment), with the evidence linked.

Shared by the drift and the live-metric sensors, which retrain for different reasons.
"""

from __future__ import annotations

from dagster import (
    JobDefinition,
    RunRequest,
)

from modelfactory.project.segments import split_unit
from modelfactory.stores.registry import ModelRegistry
from modelfactory.stores.urls import dagster_asset_url


def retrain_requests(
    *, run_key: str, jobs: dict[str, JobDefinition], segment: str | None, tags: dict[str, str]
) -> list[RunRequest]:
    """A retrain and the run refreshing its evidence (report or metrics), of one segment if
    given. `jobs` by run-key suffix; the run keys make Dagster launch each run once,
    however often it is requested."""
    return [
        RunRequest(
            job_name=job.name,
            run_key=f"{run_key}:{suffix}" if suffix else run_key,
            tags=tags,
            partition_key=segment,
        )
        for suffix, job in jobs.items()
    ]


def evidence_links(
    registry: ModelRegistry, unit: str, champion: str, evidence: str
) -> dict[str, str]:
    """Where on-call looks after a retrain alert: the evidence asset (its report or table,
    refreshed by the run requested with the retrain), the retrain job, the champion."""

    model, _ = split_unit(unit)
    return {
        evidence.replace("_", " "): dagster_asset_url(model, evidence),
        "retrain runs": dagster_asset_url(model, "candidate"),
        f"champion v{champion}": registry.version_url(unit, champion),
    }
