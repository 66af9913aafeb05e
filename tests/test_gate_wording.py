"""The gate is described as it decides: min_improvement 0 means strictly better ("more than
0.00%"), never "at least 0.0%"; above 0 a gain of exactly min_improvement passes."""

from __future__ import annotations

import pytest
from dagster import AssetKey

from conftest import EXAMPLES
from modelfactory.ml.evaluation import METRICS, decide, improvement_needed
from modelfactory.orchestration.definitions import build_definitions
from modelfactory.project.loader import load_project

MAE = METRICS["mae"]


def verdict(gain: float, min_improvement: float):
    """The gate on a candidate whose mae is `gain` better (relative) than the champion's."""
    return decide(
        metric=MAE,
        candidate={"mae": 1.0 - gain},
        champion={"mae": 1.0},
        min_improvement=min_improvement,
        thresholds={},
        worst_slice_gap=None,
        max_gap=None,
    )


@pytest.mark.parametrize(
    ("min_improvement", "gain", "passes", "needs"),
    [
        (0.0, 0.0, False, "needs more than 0.00%"),  # a tie keeps the champion
        (0.0, 0.001, True, "needs more than 0.00%"),
        (0.01, 0.0099, False, "needs at least 1.00%"),
        (0.01, 0.0101, True, "needs at least 1.00%"),
    ],
)
def test_the_reason_states_the_rule_decide_applies(
    min_improvement: float, gain: float, passes: bool, needs: str
) -> None:
    judged = verdict(gain, min_improvement)
    assert judged.beats_champion is passes
    assert needs in judged.reasons[0]
    assert improvement_needed(min_improvement) == needs.removeprefix("needs ")


@pytest.mark.parametrize(
    ("example", "rule"),
    [("breast_cancer", "more than 0.00%"), ("demand_forecast", "at least 1.00%")],
)
def test_the_evaluation_asset_and_its_check_describe_the_same_rule(example: str, rule: str) -> None:
    project = load_project(EXAMPLES / example)
    evaluation = build_definitions(project).resolve_assets_def(AssetKey([example, "evaluation"]))
    description = evaluation.specs_by_key[evaluation.key].description
    assert f"must improve by {rule} (relative)" in description
    (check,) = [c for c in evaluation.check_specs if c.name == "beats_champion"]
    assert f"by {rule} (relative)" in check.description
    assert "at least 0.0" not in description + check.description
