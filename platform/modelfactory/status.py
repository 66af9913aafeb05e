"""What is in production for each model, and why: the data behind `modelfactory status`."""

from __future__ import annotations

from typing import Any

from modelfactory.project import ModelProject
from modelfactory.registry import ModelRegistry
from modelfactory.segments import segment_model
from modelfactory.serving.rollouts import RolloutStore

__all__ = ["model_status"]


def model_status(
    project: ModelProject,
    registry: ModelRegistry,
    rollouts: RolloutStore | None = None,
    segment: str | None = None,
) -> dict[str, Any]:
    """Champion version and holdout metric, its last move, the latest candidate's verdict,
    and the rollout on the endpoint (active, or the last one); of one segment, if given."""
    metric = project.spec.metric.name
    name = segment_model(project.name, segment)
    rollout = rollouts.latest(name) if rollouts is not None else None
    champion = registry.champion(name)
    latest = registry.latest_version(name)
    moves = [m for m in registry.history(name) if champion and m.to_version == champion.version]
    last_move = moves[-1] if moves else None
    return {
        "model": project.name,
        "segment": segment,
        "label": f"{project.name}[{segment}]" if segment else project.name,
        "owner": project.spec.owner,
        "metric": metric,
        "champion": champion.version if champion else None,
        "champion_metric": _float(champion.tags.get(f"mf.holdout.{metric}")) if champion else None,
        "promoted_at": last_move.at if last_move else None,
        "promoted_by": last_move.actor if last_move else None,
        "why": last_move.reason if last_move else None,
        "last_candidate": latest.version if latest else None,
        "last_verdict": latest.tags.get("mf.verdict", "not evaluated") if latest else None,
        "last_candidate_metric": _float(latest.tags.get(f"mf.holdout.{metric}"))
        if latest
        else None,
        "rollout": rollout.describe() if rollout else None,
        "rollout_reason": rollout.reason if rollout else None,
    }


def _float(value: str | None) -> float | None:
    return float(value) if value is not None else None
