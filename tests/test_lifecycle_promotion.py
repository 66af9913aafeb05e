"""The champion move (lifecycle/promotion.py): `decide` on plain values, then `promote` on
the real stores (MLflow on sqlite, the rollout table, the audit trail, the alerts log) with
real scikit-learn models. No Dagster run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from modelfactory.errors import RegistryError
from modelfactory.lifecycle.promotion import Approval, Evaluated, Stores, decide, promote
from modelfactory.project.spec import CanarySpec
from modelfactory.stores import home

PASSED = Evaluated(candidate="3", passed=True, summary="passed: ok: mae 1 vs champion 2")
FAILED = Evaluated(candidate="3", passed=False, summary="failed: worse: mae 3 vs champion 2")


def decision(
    evaluated: Evaluated = PASSED,
    *,
    policy: str = "auto",
    current: str | None = "2",
    unit: str = "shop",
    **approval: str,
):
    return decide(
        unit=unit,
        policy=policy,
        evaluated=evaluated,
        current=current,
        approval=Approval(**approval),
        run_id="run-1",
    )


def test_policy_auto_promotes_a_passed_candidate_in_the_runs_name() -> None:
    made = decision()
    assert (made.action, made.version, made.actor) == ("promote", "3", "dagster:run-1")
    assert made.text == f"auto: gate {PASSED.summary}"
    assert decision(reason="hotfix").text == "hotfix"  # a reason given is the one recorded


def test_a_failed_candidate_keeps_the_champion_or_none() -> None:
    kept = decision(FAILED)
    assert kept.action == "keep"
    assert kept.text == f"kept v2: candidate v3 {FAILED.summary}"
    assert decision(FAILED, current=None).text == f"no champion yet: candidate v3 {FAILED.summary}"
    assert decision(FAILED, policy="manual").action == "keep"


def test_policy_manual_awaits_a_person_and_names_the_command() -> None:
    waiting = decision(policy="manual")
    assert (waiting.action, waiting.version) == ("await", "3")
    assert "`modelfactory approve shop --version 3`" in waiting.text
    assert "`approved_by: <you>` (Launchpad)" in waiting.text


def test_a_segment_is_named_as_the_cli_names_it() -> None:
    waiting = decision(policy="manual", unit="demand_forecast.uk")
    assert "`modelfactory approve demand_forecast --segment uk --version 3`" in waiting.text


def test_an_approval_by_a_person_approves_the_evaluated_candidate() -> None:
    approved = decision(policy="manual", approved_by=" alice ")
    assert (approved.action, approved.version, approved.actor) == (
        "approve",
        "3",
        "approved by alice",
    )
    assert approved.text == f"approved: gate {PASSED.summary}"
    named = decision(policy="auto", version="v3", approved_by="bob", reason="signed off")
    assert (named.action, named.version, named.text) == ("approve", "3", "signed off")
    # An approval is an approval even of a failed verdict: approval.refusal then says no.
    assert decision(FAILED, policy="manual", approved_by="alice").action == "approve"


def test_under_auto_approved_by_alone_leaves_it_to_the_gate() -> None:
    """`train --approve` of every model: the auto-policy models promote by the gate."""
    assert decision(approved_by="alice").action == "promote"
    assert decision(FAILED, approved_by="alice").action == "keep"


def test_a_version_without_who_approves_is_refused() -> None:
    refused = decision(version="3")
    assert refused.action == "refuse"
    assert "names version 3 but not who approves it: set `approved_by`" in refused.text


def test_the_champion_already_is_kept_and_said_so() -> None:
    assert decision(current="3").action == "keep"
    assert decision(current="3").text == "v3 is the champion: it is the evaluated candidate"
    assert decision(current="3", policy="manual").action == "keep"


# --- promote, on the real stores -------------------------------------------------------


def stores() -> Stores:
    return Stores(home.model_registry(), home.rollout_store(), home.audit_log(), home.notifier())


def registered(made: Stores, unit: str, count: int) -> list[str]:
    """`count` real linear regressions logged and registered for `unit`; their versions."""
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    versions = []
    for slope in range(1, count + 1):
        model = LinearRegression().fit(X, X["x"] * slope)
        logged = made.registry.log_candidate(
            model=unit, estimator=model, X_sample=X, params={}, metrics={}, tags={}
        )
        versions.append(logged.version)
    return versions


def alerts(made: Stores) -> list[dict]:
    lines = Path(made.notifier.log_path).read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("unit", ["shop", "shop.uk"])  # a model, and one segment of one
def test_promote_moves_the_alias_reserves_the_canary_records_and_announces(unit: str) -> None:
    made = stores()
    first, second = registered(made, unit, 2)
    move = promote(
        made, unit=unit, version=first, current=None, canary=CanarySpec(), actor="dagster:r1",
        reason="auto: first", run_id="r1", metrics_after={"mae": 1.0},
    )  # fmt: skip
    assert (move.from_version, move.to_version) == (None, first)
    assert made.registry.champion(unit).version == first
    assert made.rollouts.active(unit) is None  # a first champion serves at once: no canary
    move = promote(
        made, unit=unit, version=second, current=first, canary=CanarySpec(),
        actor="approved by alice", reason="approved", run_id="r2",
        metrics_before={"mae": 1.0}, metrics_after={"mae": 0.5},
    )  # fmt: skip
    assert made.registry.champion(unit).version == second
    rollout = made.rollouts.active(unit)
    assert (rollout.state, rollout.stable_version, rollout.canary_version) == (
        "pending",
        first,
        second,
    )
    moves = [e for e in made.audit.timeline(unit) if e.kind == "promote"]
    assert [e.version for e in moves] == [first, second]
    sent = [a for a in alerts(made) if a["event"] == "promoted"]
    assert len(sent) == 2 and sent[-1]["model"] == unit
    assert f"champion v{first} -> v{second} approved by alice (approved)" in sent[-1]["text"]


def test_a_champion_moved_since_the_evaluation_refuses_and_cancels_the_canary() -> None:
    """The evaluation compared against v1; meanwhile v2 became champion: promoting v3 on
    the stale verdict is refused, the alias stays, and the reserved rollout is cancelled."""
    made = stores()
    first, second, third = registered(made, "shop", 3)
    for version, current in ((first, None), (second, first)):
        promote(
            made, unit="shop", version=version, current=current, canary=CanarySpec(),
            actor="dagster:r", reason="auto", run_id="r",
        )  # fmt: skip
    made.rollouts.finish(made.rollouts.active("shop"), "completed", "done")
    with pytest.raises(RegistryError, match="re-run the evaluation"):
        promote(
            made, unit="shop", version=third, current=first, canary=CanarySpec(),
            actor="dagster:r3", reason="auto: stale", run_id="r3",
        )  # fmt: skip
    assert made.registry.champion("shop").version == second
    assert made.rollouts.active("shop") is None
    assert made.rollouts.latest("shop").state == "cancelled"
    assert len([e for e in made.audit.timeline("shop") if e.kind == "promote"]) == 2
