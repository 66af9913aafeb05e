"""A person's approval of an evaluated candidate: which candidate may be promoted, who
approved it, and the announcement that one is waiting.

Under `promotion.policy: manual` a candidate that passed the gate waits for a person. They
approve it with `modelfactory approve` or with the run config of `<model>/champion` in the
Launchpad; both are judged by `refusal` (so they refuse the same things) and both promote in a
run of `<model>/champion`, the step an automatic promotion takes: the same canary rollout,
audit trail, model card and announcement. Nothing here moves an alias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelfactory.project.segments import cli_args, split_unit
from modelfactory.stores.notify import Alert
from modelfactory.stores.urls import dagster_asset_url, dagster_run_url

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from modelfactory.stores.notify import Notifier
    from modelfactory.stores.registry import ModelRegistry

# Deferred imports: dagster (~2 s) loads only where an approval reads the Dagster instance;
# `modelfactory approve --help` and the rules here need none of it.

__all__ = [
    "ANNOUNCED_TAG",
    "Evaluated",
    "announce_once",
    "approve_command",
    "awaiting_alert",
    "latest_evaluation",
    "refusal",
]

ANNOUNCED_TAG = "mf.approval_requested_at"  # on a version once its wait was announced


@dataclass(frozen=True)
class Evaluated:
    """The latest evaluation of a model (or of one segment): which candidate, in which run."""

    version: str
    run_id: str


def latest_evaluation(
    instance: DagsterInstance, model: str, segment: str | None = None
) -> Evaluated | None:
    """The last materialization of `<model>/evaluation` (of the segment's partition): what
    `<model>/champion` reads as its input, so what an approval can promote."""
    from dagster import AssetKey, AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=AssetKey([model, "evaluation"]),
            asset_partitions=[segment] if segment else None,
        ),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    metadata = records[0].asset_materialization.metadata
    version = metadata.get("candidate_version")
    if version is None:
        return None
    return Evaluated(version=str(version.value), run_id=records[0].run_id)


def refusal(registry: ModelRegistry, unit: str, version: str, evaluated: str | None) -> str | None:
    """Why `version` of `unit` may not be approved, or None when it may.

    Only the candidate of the latest evaluation (`evaluated`) can be approved, only if its
    gate passed, and only while the champion is still the one it was compared with: an
    approval is of a verdict, and a newer evaluation or a moved champion makes it stale.
    """
    how = cli_args(unit)
    found = registry.version(unit, version)
    if found is None:
        return f"{unit} has no version {version} in the registry (`modelfactory status`)"
    champion = registry.champion(unit)
    if champion is not None and champion.version == version:
        return f"{unit}: v{version} is already the champion; nothing to approve"
    verdict = found.tags.get("mf.verdict")
    if verdict is None or evaluated is None:
        latest = f"; the latest evaluated is v{evaluated}" if evaluated else ""
        return (
            f"{unit}: v{version} was never evaluated{latest}. Only an evaluated candidate can "
            f"be approved: `modelfactory train {how}` trains and evaluates a new one"
        )
    if version != evaluated:
        return (
            f"{unit}: v{version} is not the latest evaluation: v{evaluated} was evaluated "
            f"since. Approve that one (`{approve_command(unit, evaluated)}`) or train again"
        )
    if verdict != "passed":
        reasons = found.tags.get("mf.verdict_reasons") or "no reasons recorded"
        return f"{unit}: v{version} failed the gate and cannot be promoted ({reasons})"
    compared = found.tags.get("mf.compared_with", "none")
    now = champion.version if champion is not None else "none"
    if compared != now:
        return (
            f"{unit}: v{version} was evaluated against champion v{compared}, but the champion "
            f"is now v{now}: its verdict is stale. `modelfactory train {how}` evaluates anew"
        )
    return None


def approve_command(unit: str, version: str) -> str:
    """The exact command that approves `version` of `unit` (a model or one segment)."""
    return f"modelfactory approve {cli_args(unit)} --version {version}"


def awaiting_alert(
    registry: ModelRegistry,
    unit: str,
    version: str,
    summary: str,
    evaluation: Evaluated | None,
) -> Alert:
    """The announcement that `version` passed the gate and waits for a person: links to its
    evaluation (the run, the asset's page) and the command that approves it."""

    champion = registry.champion(unit)
    links = {}
    if evaluation is not None:
        links["evaluation run"] = dagster_run_url(evaluation.run_id)
    links["evaluation"] = dagster_asset_url(split_unit(unit)[0], "evaluation")
    links[f"v{version} in MLflow"] = registry.version_url(unit, version)
    return Alert(
        model=unit,
        event="awaiting_approval",
        severity="info",
        text=(
            f"candidate v{version} passed the gate and awaits approval (policy manual; "
            f"champion: {f'v{champion.version}' if champion else 'none yet'}). Approve it with "
            f"`{approve_command(unit, version)}`. Gate {summary}"
        ),
        links=links,
    )


def announce_once(
    registry: ModelRegistry,
    notifier: Notifier,
    instance: DagsterInstance,
    *,
    unit: str,
    segment: str | None,
    version: str,
    summary: str,
) -> str:
    """Announce that `version` of `unit` waits for approval, once: the version keeps the time
    it was announced (ANNOUNCED_TAG), so a second materialization stays quiet. Returns that
    time."""
    found = registry.version(unit, version)
    announced = found.tags.get(ANNOUNCED_TAG) if found is not None else None
    if announced is not None:
        return announced
    evaluated = latest_evaluation(instance, split_unit(unit)[0], segment)
    alert = awaiting_alert(registry, unit, version, summary, evaluated)
    notifier.send(alert)
    registry.tag_version(unit, version, {ANNOUNCED_TAG: alert.at})
    return alert.at
