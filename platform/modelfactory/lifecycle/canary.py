"""The canary's judge: from captured traffic, shift on, wait, or roll back.

`judge` is a plain function of the rollout, the live statistics and the spec, so every rule
is testable on its own. `step` applies its verdict: it moves the rollout on in the rollout
table, or rolls back (the `champion` alias first, then the rollout, so the endpoint never
serves the bad version to everyone in between) and sends an alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from modelfactory.errors import LabelsError, RegistryError
from modelfactory.ml.live import compare_versions, find_labels
from modelfactory.stores.inference_log import Warehouse
from modelfactory.stores.inference_reader import VersionStats, read_labelled, version_stats
from modelfactory.stores.notify import Alert

if TYPE_CHECKING:
    from modelfactory.ml.evaluation import Task
    from modelfactory.project.spec import CanarySpec, LiveMetricSpec
    from modelfactory.stores.notify import Notifier
    from modelfactory.stores.registry import AliasMove, ModelRegistry
    from modelfactory.stores.rollouts import Rollout, RolloutStore

__all__ = ["CanaryOutcome", "LiveRule", "Verdict", "judge", "step"]

Action = Literal["wait", "advance", "rollback"]
_LATENCY_FLOOR_MS = 5.0  # below this, latency differences are noise, not a regression
PENDING_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str


@dataclass(frozen=True)
class LiveRule:
    """Where late labels arrive and how the metric is judged: once both versions have
    `spec.min_labels` labelled rows from the rollout, a canary whose live metric is worse than
    the stable version's by more than `spec.tolerance` is rolled back."""

    labels: Path
    target: str
    task: Task
    metric: str
    spec: LiveMetricSpec


@dataclass(frozen=True)
class CanaryOutcome:
    verdict: Verdict
    rollout: Rollout  # as it is after the verdict was applied
    move: AliasMove | None = None


def judge(rollout: Rollout, stats: list[VersionStats], spec: CanarySpec) -> Verdict:
    """Compare the new version's live traffic at this stage with the stable version's."""
    role = "shadow" if rollout.state == "shadow" else "canary"
    new = _find(stats, rollout.canary_version, role)
    old = _find(stats, rollout.stable_version, "stable")
    where = f"v{rollout.canary_version} ({role})"
    budget = spec.max_error_rate * spec.min_requests
    if new.errors > budget:
        # Even if every remaining request of this stage succeeded, the stage would fail.
        return Verdict(
            "rollback",
            f"{where} failed {new.errors} of {new.requests} requests "
            f"(limit {spec.max_error_rate:.1%} of {spec.min_requests})",
        )
    if new.requests < spec.min_requests:
        return Verdict("wait", f"{where} answered {new.requests}/{spec.min_requests} requests")
    if new.error_rate > spec.max_error_rate:
        return Verdict(
            "rollback",
            f"{where} error rate {new.error_rate:.2%} > {spec.max_error_rate:.2%}",
        )
    if new.p95_latency_ms is not None and old.p95_latency_ms is not None:
        limit = spec.max_latency_ratio * max(old.p95_latency_ms, _LATENCY_FLOOR_MS)
        if new.p95_latency_ms > limit:
            return Verdict(
                "rollback",
                f"{where} p95 latency {new.p95_latency_ms:.1f} ms > {limit:.1f} ms "
                f"({spec.max_latency_ratio:g}x stable v{rollout.stable_version})",
            )
    healthy = f"{where} healthy over {new.requests} requests ({new.error_rate:.2%} errors"
    if new.p95_latency_ms is not None:
        healthy += f", p95 {new.p95_latency_ms:.1f} ms"
    return Verdict("advance", healthy + ")")


def step(
    rollout: Rollout,
    spec: CanarySpec,
    *,
    warehouse: Warehouse,
    store: RolloutStore,
    registry: ModelRegistry,
    notifier: Notifier,
    live: LiveRule | None = None,
    actor: str = "canary-sensor",
) -> CanaryOutcome:
    """Judge the rollout from captured data (and labels, where they arrived) and apply the
    verdict."""

    champion = registry.champion(rollout.model)
    is_champion = champion is not None and champion.version == rollout.canary_version
    if rollout.state == "pending":
        return _start_if_forgotten(rollout, store, is_champion)
    if not is_champion:
        now = champion.version if champion else "none"
        verdict = Verdict("rollback", f"champion is v{now}, no longer v{rollout.canary_version}")
        return CanaryOutcome(verdict, store.finish(rollout, "cancelled", verdict.reason))

    if rollout.serving_error:
        verdict = Verdict("rollback", f"the endpoint cannot serve it: {rollout.serving_error}")
    else:
        stats = version_stats(warehouse, rollout.model, since=rollout.stage_started_at)
        verdict = judge(rollout, stats, spec)
        if verdict.action != "rollback" and live is not None:
            verdict = _live_verdict(rollout, warehouse, live) or verdict
    if verdict.action == "wait":
        return CanaryOutcome(verdict, rollout)
    if verdict.action == "advance":
        after = store.advance(rollout, verdict.reason)
        if after.state == "completed":
            notifier.send(
                Alert(
                    model=rollout.model,
                    event="rollout_completed",
                    text=f"v{rollout.canary_version} now serves all traffic: {verdict.reason}",
                    severity="info",
                )
            )
        return CanaryOutcome(verdict, after)

    try:
        move = registry.rollback(
            rollout.model,
            actor=actor,
            reason=f"canary: {verdict.reason}",
            to_version=rollout.stable_version,
            expected_current=rollout.canary_version,
        )
    except RegistryError as exc:  # the champion moved while we judged: not ours to undo
        return CanaryOutcome(
            Verdict("rollback", str(exc)), store.finish(rollout, "cancelled", str(exc))
        )
    after = store.finish(rollout, "rolled_back", verdict.reason)
    notifier.send(
        Alert(
            model=rollout.model,
            event="canary_rollback",
            text=(f"rolled back v{rollout.canary_version} -> v{move.to_version}: {verdict.reason}"),
            links={"mlflow": registry.version_url(rollout.model, rollout.canary_version)},
        )
    )
    return CanaryOutcome(verdict, after, move)


def _live_verdict(rollout: Rollout, warehouse: Warehouse, live: LiveRule) -> Verdict | None:
    """A rollback when labels show the canary doing worse than the stable version since the
    rollout began; None while labels are missing or too few (they arrive late).

    Labels that cannot be read, or that name no class of the model, are None too: the
    live-metric sensor announces them (once, naming the file), and the canary goes on judging
    by errors and latency instead of failing every tick on the same file.
    """

    files = find_labels(live.labels).files
    if not files:
        return None
    try:
        labelled = read_labelled(
            warehouse,
            rollout.model,
            files,
            target=live.target,
            limit=live.spec.window,
            since=rollout.started_at,
        )
        reason = compare_versions(
            labelled,
            new=rollout.canary_version,
            old=rollout.stable_version,
            task=live.task,
            metric=live.metric,
            spec=live.spec,
        )
    except LabelsError:
        return None
    return Verdict("rollback", reason) if reason else None


def _start_if_forgotten(rollout: Rollout, store: RolloutStore, promoted: bool) -> CanaryOutcome:
    """The endpoint asset starts a pending rollout right after the promotion. If it has not
    within PENDING_GRACE (its run failed, or only `champion` was materialized), start it here
    so the new champion is not left unserved; if the promotion never happened, cancel."""
    age = datetime.now(UTC) - rollout.started_at
    if age < PENDING_GRACE:
        return CanaryOutcome(Verdict("wait", f"waiting for {rollout.model}/endpoint"), rollout)
    if not promoted:
        reason = f"v{rollout.canary_version} was never promoted"
        return CanaryOutcome(
            Verdict("rollback", reason), store.finish(rollout, "cancelled", reason)
        )
    reason = f"started by the canary sensor: {rollout.model}/endpoint did not start it"
    return CanaryOutcome(Verdict("advance", reason), store.start(rollout, reason))


def _find(stats: list[VersionStats], version: str, role: str) -> VersionStats:
    for item in stats:
        if item.version == version and item.role == role:
            return item
    return VersionStats(version=version, role=role, requests=0, errors=0, p95_latency_ms=None)
