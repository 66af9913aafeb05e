"""The champion move: first what to do (a plain decision), then doing it.

`decide` reads the evaluation's verdict, the champion now and a person's approval (the
`<model>/champion` run config) and says promote, approve, await a person, keep, or refuse,
with the words the asset shows. `promote` is the one way an alias moves forward, automatic
or approved: reserve the canary rollout, move the alias (refused by the registry if the
champion moved since the evaluation), record the move and announce it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from modelfactory.lifecycle.approval import approve_command
from modelfactory.stores.audit import APPROVED_BY, by_whom
from modelfactory.stores.notify import Alert
from modelfactory.stores.urls import dagster_run_url

if TYPE_CHECKING:
    from modelfactory.project.spec import CanarySpec
    from modelfactory.stores.audit import AuditLog
    from modelfactory.stores.notify import Notifier
    from modelfactory.stores.registry import AliasMove, ModelRegistry
    from modelfactory.stores.rollouts import RolloutStore

__all__ = ["Action", "Approval", "Decision", "Evaluated", "Stores", "decide", "promote"]

Action = Literal["promote", "approve", "await", "keep", "refuse"]


@dataclass(frozen=True)
class Approval:
    """A person's approval as the champion asset's config carries it; all empty: none."""

    version: str = ""
    approved_by: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Evaluated:
    """What `<model>/evaluation` handed on: the candidate, the gate's verdict on it."""

    candidate: str
    passed: bool
    summary: str


@dataclass(frozen=True)
class Decision:
    """What `<model>/champion` does.

    - promote: the gate passed under policy auto; `actor` is the run.
    - approve: a person approves `version`; the caller still asks approval.refusal whether
      that version may be promoted (the registry's state), then promotes the candidate.
    - await: the gate passed under policy manual; nothing moves until a person approves.
    - keep: the champion stays (the gate failed, or the candidate is the champion already).
    - refuse: the approval itself is incomplete; `text` says why (the run fails).

    `text` is the reason recorded for a move, or the decision shown for the others.
    """

    action: Action
    text: str
    actor: str = ""
    version: str | None = None


def decide(
    *,
    unit: str,
    policy: str,
    evaluated: Evaluated,
    current: str | None,
    approval: Approval,
    run_id: str,
) -> Decision:
    """The champion move for `unit` (a model, or `<model>.<segment>`), from plain values.

    An approval names a version, or is a person's under policy manual; under policy auto an
    `approved_by` alone (`train --approve` of every model) changes nothing: the gate decides.
    """
    who = approval.approved_by.strip()
    named = approval.version.strip()
    if named or (who and policy == "manual"):
        version = named.removeprefix("v") or evaluated.candidate
        if not who:
            return Decision(
                "refuse",
                f"{unit}: the config names version {version} but not who approves it: "
                "set `approved_by`",
                version=version,
            )
        reason = approval.reason or f"approved: gate {evaluated.summary}"
        return Decision("approve", reason, actor=APPROVED_BY + who, version=version)
    if current == evaluated.candidate:  # promoted already, by an earlier run of the asset
        return Decision("keep", f"v{current} is the champion: it is the evaluated candidate")
    if not evaluated.passed:
        kept = f"kept v{current}" if current else "no champion yet"
        return Decision("keep", f"{kept}: candidate v{evaluated.candidate} {evaluated.summary}")
    if policy == "manual":
        version = evaluated.candidate
        return Decision(
            "await",
            f"awaiting approval: candidate v{version} {evaluated.summary}. Approve it with "
            f"`{approve_command(unit, version)}`, or materialize this asset with config "
            "`approved_by: <you>` (Launchpad).",
            version=version,
        )
    reason = approval.reason or f"auto: gate {evaluated.summary}"
    return Decision("promote", reason, actor=f"dagster:{run_id}", version=evaluated.candidate)


@dataclass(frozen=True)
class Stores:
    """The stores a promotion writes to (the champion asset's resources)."""

    registry: ModelRegistry
    rollouts: RolloutStore
    audit: AuditLog
    notifier: Notifier


def promote(
    stores: Stores,
    *,
    unit: str,
    version: str,
    current: str | None,
    canary: CanarySpec,
    actor: str,
    reason: str,
    run_id: str,
    metrics_before: dict[str, float] | None = None,
    metrics_after: dict[str, float] | None = None,
) -> AliasMove:
    """Move `unit`'s champion from `current` (the one the evaluation compared with) to
    `version`, with the canary rollout reserved first and cancelled if the move fails."""
    # Reserved before the alias moves: the endpoint keeps serving the old champion until
    # `<model>/endpoint` starts the canary, never the new one to everyone in between.
    reserved = None
    if current is not None:
        reserved = stores.rollouts.reserve(
            unit, stable=current, canary=version, spec=canary, reason=reason
        )
    try:
        move = stores.registry.promote(
            unit,
            version,
            expected_current=current,
            actor=actor,
            reason=reason,
            dagster_run_id=run_id,
            metrics_before=metrics_before or {},
            metrics_after=metrics_after,
        )
    except Exception:
        if reserved is not None:
            stores.rollouts.finish(reserved, "cancelled", "the promotion failed")
        raise
    stores.audit.record_move(move)
    stores.notifier.send(_promoted_alert(stores.registry, move, run_id))
    return move


def _promoted_alert(registry: ModelRegistry, move: AliasMove, run_id: str) -> Alert:
    return Alert(
        model=move.model,
        event="promoted",
        severity="info",
        text=(
            f"champion v{move.from_version or 'none'} -> v{move.to_version} "
            f"{by_whom(move.actor)} ({move.reason}); the endpoint rolls it out by canary"
        ),
        links={
            "run": dagster_run_url(run_id),
            f"v{move.to_version} in MLflow": registry.version_url(move.model, move.to_version),
        },
    )
