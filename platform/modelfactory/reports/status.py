"""What is in production for each model, and why: the data behind `modelfactory status`."""

from __future__ import annotations

from typing import Any

from modelfactory.ml.evaluation import METRICS
from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import segment_model
from modelfactory.stores.registry import ModelRegistry
from modelfactory.stores.rollouts import RolloutStore

__all__ = ["leaderboard", "model_status"]

_ARROWS = {"minimize": "↓", "maximize": "↑"}


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
        "task": project.spec.task,
        "metric": metric,
        "champion": champion.version if champion else None,
        "champion_metrics": champion.holdout_metrics if champion else {},
        "champion_metric": champion.holdout_metrics.get(metric) if champion else None,
        "promoted_at": last_move.at if last_move else None,
        "promoted_by": last_move.actor if last_move else None,
        "why": last_move.reason if last_move else None,
        "last_candidate": latest.version if latest else None,
        "last_verdict": latest.tags.get("mf.verdict", "not evaluated") if latest else None,
        "last_candidate_metric": latest.holdout_metrics.get(metric) if latest else None,
        "rollout": rollout.describe() if rollout else None,
        "rollout_reason": rollout.reason if rollout else None,
    }


def leaderboard(rows: list[dict[str, Any]]) -> str:
    """Every champion's standard holdout metrics side by side, one table per task (their
    metrics differ); each model's own gate metric is starred. Rows are model_status()'s."""

    tables = []
    for task in sorted({row["task"] for row in rows if row["champion"]}):
        ranked = sorted((r for r in rows if r["task"] == task and r["champion"]), key=_label)
        columns = [m for m in METRICS.values() if m.task == task]
        columns = [m for m in columns if any(m.name in r["champion_metrics"] for r in ranked)]
        width = max(len(_label(r)) for r in ranked) + 2
        widths = [max(len(m.name) + 1, 9) + 2 for m in columns]
        header = f"{task:<{width}}" + "".join(
            f"{m.name + _ARROWS[m.direction]:>{w}}" for m, w in zip(columns, widths, strict=True)
        )
        lines = [header]
        for row in ranked:
            cells = "".join(
                f"{_cell(row['champion_metrics'].get(m.name), m.name == row['metric']):>{w}}"
                for m, w in zip(columns, widths, strict=True)
            )
            lines.append(f"{_label(row):<{width}}{cells}")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def _label(row: dict[str, Any]) -> str:
    return f"{row['label']} v{row['champion']}"


def _cell(value: float | None, own: bool) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" + ("*" if own else " ")
