"""Replay before promotion: the candidate against what served, day by day, on real data."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from modelfactory.ml.evaluation import METRICS
from modelfactory.ml.replay import replay, served_with_outcomes

MAE = METRICS["mae"]
DAYS = pd.date_range("2026-04-01", periods=4, freq="D")


def served_and_holdout(candidate_error: list[float]) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """Two rows a day; what served was off by 1.0 every day, the candidate by the given error
    on each day."""
    rows = pd.DataFrame({"date": DAYS.repeat(2), "x": range(8)})
    truth = [10.0] * 8
    served = rows.assign(prediction=[11.0] * 8, model_version="3")
    holdout = rows.assign(y=truth)
    candidate = [10.0 + candidate_error[i // 2] for i in range(8)]
    return served, holdout, candidate


@pytest.mark.parametrize(
    ("errors", "min_share", "passed", "wins"),
    [
        ([0.5, 0.5, 2.0, 0.5], 0.5, True, 3),  # better on 3 of 4 days
        ([0.5, 0.5, 2.0, 0.5], 1.0, False, 3),  # but asked to be on every day
        ([2.0, 2.0, 2.0, 0.5], 0.5, False, 1),  # one lucky day does not carry it
        ([1.0, 1.0, 1.0, 1.0], 1.0, True, 4),  # as good as what served counts
    ],
)
def test_the_candidate_must_hold_up_on_enough_replayed_days(errors, min_share, passed, wins):
    served, holdout, candidate = served_and_holdout(errors)
    joined = served_with_outcomes(
        served, holdout, target="y", candidate=candidate, candidate_score=None, keys=["date", "x"]
    )
    result = replay(joined, time_column="date", metric=MAE, days=4, min_share=min_share)
    assert (result.passed, result.wins, result.days) == (passed, wins, 4)
    assert list(result.table["served_version"]) == ["3"] * 4
    assert list(result.table["served_mae"]) == [1.0] * 4
    assert f"{wins}/4 replayed days" in result.describe()


def test_only_the_last_days_and_only_rows_with_known_outcomes_are_replayed():
    served, holdout, candidate = served_and_holdout([2.0, 0.5, 0.5, 0.5])
    holdout = holdout.iloc[:6]  # the last day's outcome is not known yet
    joined = served_with_outcomes(
        served, holdout, target="y", candidate=candidate[:6], candidate_score=None,
        keys=["date", "x"],
    )  # fmt: skip
    result = replay(joined, time_column="date", metric=MAE, days=2, min_share=1.0)
    assert list(result.table["day"]) == ["2026-04-02", "2026-04-03"] and result.passed


def test_nothing_scored_yet_is_not_a_failure():
    served, holdout, candidate = served_and_holdout([2.0] * 4)
    joined = served_with_outcomes(
        served.iloc[0:0], holdout, target="y", candidate=candidate, candidate_score=None,
        keys=["date", "x"],
    )  # fmt: skip
    result = replay(joined, time_column="date", metric=MAE, days=5, min_share=0.5)
    assert result.passed and result.days == 0 and "nothing to replay" in result.describe()


def test_the_gate_replays_the_candidate_on_the_last_days_scored(copy_example) -> None:
    from dagster import AssetKey, DagsterInstance

    from conftest import edit_spec
    from modelfactory.orchestration.runs import score, seed_data, train
    from modelfactory.project.loader import load_project

    def edit(spec: dict) -> None:
        spec["promotion"]["replay"] = {"days": 5, "min_share": 0.6}
        spec["promotion"].pop("slices")  # a heavily shrunk v1 strays on promo days
        spec["params"] = {"alpha": 1000.0}

    root = copy_example(
        "demand_forecast", edit=edit, segments=False
    )  # scores by day (predictions.daily_from)
    seed_data(load_project(root))
    instance = DagsterInstance.get()
    first = train(load_project(root), instance=instance)
    assert first.promoted and "evaluation:replay" not in first.failed_checks  # nothing served
    for day in pd.date_range("2026-04-24", "2026-04-30").date:  # v1 scores the last week
        assert score(load_project(root), day=day, instance=instance).rows == 60

    edit_spec(root, lambda spec: spec["params"].update(alpha=1e5))  # worse every day
    worse = train(load_project(root), instance=instance)
    assert not worse.promoted
    assert "0/5 replayed days" in worse.failed_checks["evaluation:replay"]

    edit_spec(root, lambda spec: spec["params"].update(alpha=1.0))  # better every day
    better = train(load_project(root), instance=instance)
    assert better.promoted and "ok: candidate at least as good" in better.decision
    assert "5/5 replayed days" in better.decision
    event = instance.get_latest_materialization_event(AssetKey(["demand_forecast", "evaluation"]))
    table = event.asset_materialization.metadata["replay"].value
    assert table.count("2026-04-") == 5  # the last five scored days of the holdout
    assert len(re.findall(r"\|\s+1\s+\|", table)) == 5  # each served by v1


def test_scores_that_match_no_holdout_row_are_said_so_not_taken_for_none_yet():
    served, holdout, candidate = served_and_holdout([2.0] * 4)
    joined = served_with_outcomes(
        served.assign(x=served["x"] + 100), holdout, target="y", candidate=candidate,
        candidate_score=None, keys=["date", "x"],
    )  # fmt: skip
    result = replay(
        joined, time_column="date", metric=MAE, days=5, min_share=0.5, scored_rows=len(served)
    )
    assert result.passed and "none of the 8 rows scored" in result.describe()
