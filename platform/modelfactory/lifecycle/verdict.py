"""The evaluation's verdict as plain values: what the gate decided on the holdout, what the
model version is tagged with, and what each of the evaluation asset's checks says.

`<model>/evaluation` scores the candidate (and the champion) with ml/gate.py and hands the
scores here; everything it records or shows is derived from the `Verdict` this module
returns, so the rules (promote, hold for a person, reject) are testable without Dagster or
MLflow: the inputs are a spec, a `gate.Scored` and the champion's scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from modelfactory.ml import gate
from modelfactory.ml.evaluation import METRICS, GateVerdict
from modelfactory.stores.registry import HOLDOUT_TAG

if TYPE_CHECKING:
    import pandas as pd

    from modelfactory.ml.replay import ReplayResult
    from modelfactory.project.spec import ModelSpec

__all__ = ["CheckOutcome", "Outcome", "Verdict", "judge"]

Outcome = Literal["promote", "hold", "reject"]
TAG_LIMIT = 20_000  # characters an MLflow tag holds comfortably (the slice / class tables)


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check of `<model>/evaluation`, as plain values (the asset wraps it)."""

    name: str
    passed: bool
    metadata: dict[str, Any]
    description: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The gate's verdict on one candidate against the champion it was compared with.

    `outcome` is what the gate alone asks for: `promote` (passed, policy auto), `hold`
    (passed, policy manual: a person approves) or `reject` (failed). Whether the alias then
    moves is lifecycle/promotion.py's decision (an approval, a champion that moved).
    """

    spec: ModelSpec
    candidate_version: str
    champion_version: str | None
    scores: dict[str, float]
    champion_scores: dict[str, float] | None
    gate: GateVerdict
    holdout_rows: int
    slices: pd.DataFrame | None = None
    per_class: pd.DataFrame | None = None
    replayed: ReplayResult | None = None
    worst_gap: float | None = None

    @property
    def passed(self) -> bool:
        return self.gate.passed

    @property
    def summary(self) -> str:
        return self.gate.summary

    @property
    def outcome(self) -> Outcome:
        if not self.gate.passed:
            return "reject"
        return "hold" if self.spec.promotion.policy == "manual" else "promote"

    def version_tags(self) -> dict[str, str]:
        """What the candidate's model version records of its evaluation: the verdict, what it
        was compared with, its holdout metrics and, for the model card, the slice and
        per-class tables (cut to fit a tag)."""
        return {
            "mf.verdict": "passed" if self.passed else "failed",
            "mf.verdict_reasons": "; ".join(self.gate.reasons),
            "mf.compared_with": self.champion_version or "none",
            "mf.holdout_rows": str(self.holdout_rows),
            **{f"{HOLDOUT_TAG}{k}": f"{v:.6g}" for k, v in self.scores.items()},
            **(slices_tags(self.slices) if self.slices is not None else {}),
            **(per_class_tags(self.per_class) if self.per_class is not None else {}),
        }

    def checks(self) -> list[CheckOutcome]:
        """The evaluation's checks, in the order the asset declares them (replay only where
        promotion.replay is set)."""
        metric = METRICS[self.spec.metric.name].name
        champion = self.champion_scores
        outcomes = [
            CheckOutcome(
                "beats_champion",
                self.gate.beats_champion,
                {
                    "candidate": self.scores[metric],
                    "champion": champion[metric] if champion else "none",
                },
                description=self.gate.reasons[0],
            ),
            CheckOutcome(
                "meets_thresholds",
                self.gate.meets_thresholds,
                {k: v for k, v in self.scores.items() if k in self.spec.promotion.thresholds},
            ),
            CheckOutcome(
                "slice_gap",
                self.gate.slices_ok,
                {"worst_gap": self.worst_gap if self.worst_gap is not None else "not configured"},
            ),
        ]
        if self.spec.promotion.replay is not None:
            replayed = self.replayed
            outcomes.append(
                CheckOutcome(
                    "replay",
                    self.gate.replay_ok,
                    {
                        "days": replayed.days if replayed else 0,
                        "wins": replayed.wins if replayed else 0,
                    },
                    description=replayed.describe() if replayed else "no champion: nothing served",
                )
            )
        return outcomes


def judge(
    spec: ModelSpec,
    scored: gate.Scored,
    *,
    candidate_version: str,
    champion_version: str | None,
    champion_scores: dict[str, float] | None,
    replayed: ReplayResult | None = None,
) -> Verdict:
    """The gate of model.yaml on the candidate's holdout scores (`scored`), against the
    champion's scores on the same rows (None: no champion yet, the first good one passes)."""
    verdict = gate.judge(
        spec,
        scored,
        champion_scores,
        replay=(replayed.passed, replayed.describe()) if replayed else None,
    )
    return Verdict(
        spec=spec,
        candidate_version=candidate_version,
        champion_version=champion_version,
        scores=scored.scores,
        champion_scores=champion_scores,
        gate=verdict,
        holdout_rows=len(scored.predicted.labels),
        slices=scored.slices,
        per_class=scored.per_class,
        replayed=replayed,
        worst_gap=scored.worst_gap,
    )


def slices_tags(slices: pd.DataFrame, limit: int = TAG_LIMIT) -> dict[str, str]:
    """The slice report as version tags for the model card: largest gaps first, cut to whole
    records under `limit` characters when there are very many slices (the count says so)."""
    ordered = slices.sort_values("gap", ascending=False, na_position="last")
    records = json.loads(ordered.to_json(orient="records"))
    text = json.dumps(records)
    while len(text) > limit:
        records = records[: len(records) // 2]
        text = json.dumps(records)
    return {"mf.slices": text, "mf.slices_total": str(len(slices))}


def per_class_tags(table: pd.DataFrame, limit: int = TAG_LIMIT) -> dict[str, str]:
    """The per-class scores as one version tag for the model card and live metrics; left out
    (the metadata table still shows them) when a model has too many classes to fit."""
    text = table.to_json(orient="records", double_precision=6)
    return {"mf.per_class": text} if len(text) <= limit else {}
