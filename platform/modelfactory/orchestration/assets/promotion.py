"""The promotion steps: `champion` (the alias moves only through the gate, or a person's
approval of it) and `endpoint` (the canary rollout of a new champion starts).

What to do is lifecycle/promotion.py's `decide`, a plain function; doing it is its
`promote`. These assets read their inputs and resources, and show the outcome.
"""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from modelfactory.lifecycle import promotion
from modelfactory.lifecycle.approval import announce_once, refusal
from modelfactory.lifecycle.promotion import Approval, Decision, Evaluated
from modelfactory.orchestration.assets.shared import Graph
from modelfactory.project.segments import unit_of
from modelfactory.stores.audit import APPROVED_BY
from modelfactory.stores.registry import AliasMove, ModelRegistry
from modelfactory.stores.rollouts import Rollout, RolloutStore
from modelfactory.stores.urls import endpoint_url

__all__ = ["PromotionConfig", "promotion_assets"]


class PromotionConfig(Config):
    """Run config of `<model>/champion`: a person's approval of the evaluated candidate.

    Left empty, the gate decides (policy auto) or the candidate waits (policy manual). With
    `version` and `approved_by` (or, under policy manual, `approved_by` alone: the latest
    evaluated), that candidate is promoted unless approval.refusal says why not (then the run
    fails, saying so). `modelfactory approve` runs exactly this; a person can type the same
    three fields in the Launchpad. Under policy auto `approved_by` alone changes nothing: the
    gate decided, and the trail says so (`train --approve` of every model, as `make dev`'s).
    """

    version: str = Field(
        default="",
        description=(
            "The evaluated candidate to promote; empty: the latest evaluated one (policy "
            "manual; under policy auto an approval names its version)."
        ),
    )
    approved_by: str = Field(
        default="",
        description="Who approves: recorded as 'approved by <who>' in the audit trail.",
    )
    reason: str = Field(default="", description="Why, for the record; empty: the gate's verdict.")


def promotion_assets(graph: Graph) -> list[AssetsDefinition]:
    return [_champion(graph), _endpoint(graph)]


def _champion(graph: Graph) -> AssetsDefinition:
    spec, key = graph.spec, graph.key

    @asset(
        key=key["champion"],
        ins={"evaluation": AssetIn(key["evaluation"])},
        kinds={"mlflow"},
        required_resource_keys={"model_registry", "rollouts", "notifier", "audit"},
        description=(
            "Moves the registry alias 'champion' to the candidate when the gate passed"
            + (
                " (policy auto)."
                if spec.promotion.policy == "auto"
                else (
                    " and a person approves (policy manual): `modelfactory approve`, or this "
                    "asset's config `approved_by` (and `version`) in the Launchpad. A candidate "
                    "waiting for approval is announced once."
                )
            )
            + " Every move is recorded; `modelfactory rollback` undoes the last one."
        ),
        **graph.common,
    )
    def champion(
        context: AssetExecutionContext, config: PromotionConfig, evaluation: dict
    ) -> Output:
        registry: ModelRegistry = context.resources.model_registry
        model = unit_of(context)
        candidate = evaluation["candidate"].version
        champion_now = registry.champion(model)
        current = champion_now.version if champion_now else None
        decision = promotion.decide(
            unit=model,
            policy=spec.promotion.policy,
            evaluated=Evaluated(candidate, evaluation["passed"], evaluation["summary"]),
            current=current,
            approval=Approval(config.version, config.approved_by, config.reason),
            run_id=context.run_id,
        )
        if decision.action == "refuse":
            raise Failure(decision.text)
        if decision.action == "approve":
            problem = refusal(registry, model, decision.version or candidate, candidate)
            if problem is not None:
                raise Failure(problem)
        if decision.action in ("approve", "promote"):
            return _promote(context, graph, evaluation, decision)
        if decision.action == "await":
            announced = announce_once(
                registry,
                context.resources.notifier,
                context.instance,
                unit=model,
                segment=context.partition_key if spec.segments else None,
                version=candidate,
                summary=evaluation["summary"],
            )
            extra = {"awaiting_approval": f"v{candidate}", "announced_at": announced}
            return _champion_output(registry, model, current, decision.text, extra=extra)
        return _champion_output(registry, model, current, decision.text)

    return champion


def _promote(
    context: AssetExecutionContext, graph: Graph, evaluation: dict, decision: Decision
) -> Output:
    """The candidate promoted (lifecycle/promotion.py: rollout reserved, alias moved, move
    recorded and announced); `<model>/endpoint` then starts the rollout and
    `<model>/model_card` describes the new champion."""
    resources = context.resources
    model = unit_of(context)
    version = evaluation["candidate"].version
    move = promotion.promote(
        promotion.Stores(
            resources.model_registry, resources.rollouts, resources.audit, resources.notifier
        ),
        unit=model,
        version=version,
        current=evaluation["champion_version"],
        canary=graph.spec.serving.canary,
        actor=decision.actor,
        reason=decision.text,
        run_id=context.run_id,
        metrics_before=evaluation["champion_scores"],
        metrics_after=evaluation["scores"],
    )
    context.log.info(
        f"{model}: champion v{move.from_version} -> v{move.to_version} ({decision.text})"
    )
    return _champion_output(
        resources.model_registry, model, version, decision.text, promoted=True, move=move
    )


def _champion_output(
    registry: ModelRegistry,
    model: str,
    version: str | None,
    decision: str,
    *,
    promoted: bool = False,
    move: AliasMove | None = None,
    extra: dict[str, Any] | None = None,
) -> Output:
    metadata: dict[str, Any] = {
        "champion_version": version or "none",
        "promoted": promoted,
        "decision": decision,
        **(extra or {}),
    }
    if move is not None and move.actor.startswith(APPROVED_BY):
        metadata["approved_by"] = move.actor.removeprefix(APPROVED_BY)
    if version:
        metadata["mlflow_model_version"] = MetadataValue.url(registry.version_url(model, version))
    if move is not None:
        metadata["moved_from"] = move.from_version or "none"
        metadata["metrics_before"] = MetadataValue.json(move.metrics_before)
        metadata["metrics_after"] = MetadataValue.json(move.metrics_after)
    return Output(
        {"version": version, "promoted": promoted, "decision": decision}, metadata=metadata
    )


def _endpoint(graph: Graph) -> AssetsDefinition:
    spec, key = graph.spec, graph.key
    canary = spec.serving.canary

    @asset(
        key=key["endpoint"],
        ins={"champion": AssetIn(key["champion"])},
        kinds={"fastapi"},
        required_resource_keys={"rollouts"},
        description=(
            f"Starts the rollout of a newly promoted champion on the endpoint "
            f"(`modelfactory serve`): {' → '.join(f'{s}%' for s in canary.steps)} of requests"
            + (", after a shadow phase" if canary.shadow else "")
            + "; the sensor modelfactory_canary moves it on or rolls it back from live traffic."
        ),
        **graph.common,
    )
    def endpoint(context: AssetExecutionContext, champion: dict) -> Output:
        rollouts: RolloutStore = context.resources.rollouts
        model = unit_of(context)
        rollout = rollouts.active(model)
        if rollout is not None and rollout.state == "pending":
            rollout = rollouts.start(rollout, reason=f"started by run {context.run_id}")
            context.log.info(f"{model}: rollout {rollout.describe()}")
        rollout = rollout or rollouts.latest(model)
        return _endpoint_output(spec.name, champion.get("version"), rollout)

    return endpoint


def _endpoint_output(model: str, champion: str | None, rollout: Rollout | None) -> Output:
    """What the endpoint serves now, with the rollout's state as metadata."""
    url = endpoint_url()
    if rollout is not None and rollout.active:
        serving = rollout.describe()
    elif rollout is not None and rollout.canary_version == champion:
        serving = f"v{champion} ({rollout.state.replace('_', ' ')})"
    else:
        serving = f"v{champion}" if champion else "nothing: no champion yet"
    metadata: dict[str, Any] = {
        "serving": serving,
        "champion_version": champion or "none",
        "predict_url": MetadataValue.url(f"{url}/models/{model}/predict"),
        "docs": MetadataValue.url(f"{url}/docs"),
    }
    if rollout is not None:
        metadata.update(rollout.as_metadata())
    return Output(
        {
            "champion": champion,
            "rollout_id": rollout.id if rollout else None,
            "rollout_state": rollout.state if rollout else None,
        },
        metadata=metadata,
    )
