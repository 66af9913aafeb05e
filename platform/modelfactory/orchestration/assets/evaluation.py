"""The evaluation step: the candidate against the champion on the same holdout.

The rules live in lifecycle/verdict.py (a plain function of the scores and the spec); this
module loads the two models, scores them (ml/gate.py), replays the served days where
promotion.replay is set, and records the verdict: on the model version, in the audit trail,
as the asset's metadata and as its checks.
"""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from modelfactory.lifecycle.verdict import Verdict, judge
from modelfactory.ml import datasets, gate
from modelfactory.ml.evaluation import METRICS, improvement_needed
from modelfactory.ml.replay import ReplayResult, replay, served_with_outcomes
from modelfactory.orchestration.assets.shared import Graph, scored
from modelfactory.orchestration.batch import read_scored
from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import cli_args, unit_of
from modelfactory.project.spec import ModelSpec
from modelfactory.stores.audit import AuditLog
from modelfactory.stores.home import inference_store
from modelfactory.stores.registry import LoggedCandidate, ModelRegistry, VersionInfo

__all__ = ["evaluation_assets"]


def evaluation_assets(graph: Graph) -> list[AssetsDefinition]:
    project, spec, key = graph.project, graph.spec, graph.key
    metric = METRICS[spec.metric.name]

    @asset(
        key=key["evaluation"],
        ins={"split": AssetIn(key["split"]), "candidate": AssetIn(key["candidate"])},
        kinds={"scikit-learn", "mlflow"},
        required_resource_keys={"model_registry", "audit"},
        description=(
            f"Candidate vs the current champion on the same holdout: {metric.name} must improve "
            f"by {improvement_needed(spec.promotion.min_improvement)} (relative), thresholds "
            "hold and no slice strays too far. The verdict is recorded on the model version."
        ),
        check_specs=_check_specs(graph),
        **graph.common,
    )
    def evaluation(
        context: AssetExecutionContext, split: Any, candidate: LoggedCandidate
    ) -> Iterator[Any]:
        registry: ModelRegistry = context.resources.model_registry
        model = unit_of(context)
        X, y = datasets.xy(split, spec, "test")
        candidate_scored = scored(spec, registry.load(model, candidate.version), X, y)
        champion = registry.champion(model)
        champion_scores = _champion_scores(spec, registry, model, champion, X, y)
        replayed = None
        if spec.promotion.replay is not None and champion is not None:
            segment = context.partition_key if spec.segments else None
            replayed = _replay(project, split, segment, candidate_scored.predicted)
        verdict = judge(
            spec,
            candidate_scored,
            candidate_version=candidate.version,
            champion_version=champion.version if champion else None,
            champion_scores=champion_scores,
            replayed=replayed,
        )
        _record(context, registry, model, candidate, verdict)
        yield Output(_result(candidate, verdict), metadata=_metadata(verdict))
        for check in verdict.checks():
            yield AssetCheckResult(
                check_name=check.name,
                passed=check.passed,
                severity=AssetCheckSeverity.WARN,
                description=check.description,
                metadata=check.metadata,
            )

    return [evaluation]


def _check_specs(graph: Graph) -> list[AssetCheckSpec]:
    spec, asset_key = graph.spec, graph.key["evaluation"]
    metric = METRICS[spec.metric.name]
    specs = [
        AssetCheckSpec(
            "beats_champion",
            asset=asset_key,
            description=(
                f"Candidate's {metric.name} beats the champion's on the holdout by "
                f"{improvement_needed(spec.promotion.min_improvement)} (relative)."
            ),
        ),
        AssetCheckSpec(
            "meets_thresholds",
            asset=asset_key,
            description="Every promotion.thresholds bound holds on the holdout.",
        ),
        AssetCheckSpec(
            "slice_gap",
            asset=asset_key,
            description="No slice's metric strays beyond promotion.slices.max_gap.",
        ),
    ]
    if spec.promotion.replay:
        specs.append(
            AssetCheckSpec(
                "replay",
                asset=asset_key,
                description=(
                    "On the last promotion.replay.days days scored by day, the "
                    "candidate does at least as well as what served, often enough."
                ),
            )
        )
    return specs


def _champion_scores(
    spec: ModelSpec,
    registry: ModelRegistry,
    model: str,
    champion: VersionInfo | None,
    X: Any,
    y: Any,
) -> dict[str, float] | None:
    """The champion's scores on the candidate's holdout; a champion that cannot be loaded or
    scored fails the run, saying how to get out of it."""
    if champion is None:
        return None
    try:
        champion_model = registry.load(model, champion.version)
        return gate.score(spec, champion_model, X, y, slices=False).scores
    except Exception as exc:
        raise Failure(
            f"{model}: champion v{champion.version} could not be loaded or scored on the "
            f"holdout ({type(exc).__name__}: {exc}). Roll back with "
            f"`modelfactory rollback {cli_args(model)}` or promote a candidate by hand."
        ) from exc


def _record(
    context: AssetExecutionContext,
    registry: ModelRegistry,
    model: str,
    candidate: LoggedCandidate,
    verdict: Verdict,
) -> None:
    """The verdict kept where people look later: the run's test metrics, the version's tags
    (the model card and `approve` read them) and the audit trail."""
    scores = verdict.scores
    registry.log_run_metrics(candidate.run_id, {f"test_{k}": v for k, v in scores.items()})
    registry.tag_version(model, candidate.version, verdict.version_tags())
    audit: AuditLog = context.resources.audit
    audit.record_evaluation(
        unit=model,
        version=candidate.version,
        dagster_run_id=context.run_id,
        compared_with=verdict.champion_version,
        passed=verdict.passed,
        metrics=scores,
        summary=verdict.summary,
    )


def _result(candidate: LoggedCandidate, verdict: Verdict) -> dict[str, Any]:
    """The value `<model>/champion` reads."""
    return {
        "candidate": candidate,
        "champion_version": verdict.champion_version,
        "scores": verdict.scores,
        "champion_scores": verdict.champion_scores,
        "passed": verdict.passed,
        "summary": verdict.summary,
    }


def _metadata(verdict: Verdict) -> dict[str, Any]:
    slices, classes, replayed = verdict.slices, verdict.per_class, verdict.replayed
    tables = {
        "slices": slices,
        "per_class": classes,
        "replay": replayed.table if replayed is not None and replayed.days else None,
    }
    return {
        "candidate_version": verdict.candidate_version,
        "champion_version": verdict.champion_version or "none",
        "verdict": "passed" if verdict.passed else "failed",
        "reasons": MetadataValue.md("\n".join(f"- {r}" for r in verdict.gate.reasons)),
        **{f"holdout_{k}": v for k, v in verdict.scores.items()},
        **{f"champion_{k}": v for k, v in (verdict.champion_scores or {}).items()},
        **{
            name: MetadataValue.md(table.to_markdown(index=False))
            for name, table in tables.items()
            if table is not None
        },
    }


def _replay(project: ModelProject, split: Any, segment: str | None, predicted: Any) -> ReplayResult:
    """The candidate's holdout predictions against the batch scores stored for the same rows:
    the replay part of the gate (replay.py)."""
    import pandas as pd  # heavy: definitions load without pandas

    spec = project.spec
    settings, time_column = spec.promotion.replay, spec.split.by
    holdout = split[split[datasets.SPLIT_COLUMN] == "test"].reset_index(drop=True)
    holdout[time_column] = _naive_utc(holdout[time_column])
    served = pd.DataFrame()
    if len(holdout):
        since = holdout[time_column].min().to_pydatetime()
        served = read_scored(inference_store(project.name), spec, segment, since)
    if len(served):  # the warehouse may hand times back zoned (Snowflake) or not (DuckDB)
        served[time_column] = _naive_utc(served[time_column])
    joined = served_with_outcomes(
        served,
        holdout,
        target=spec.target,
        candidate=predicted.labels,
        candidate_score=predicted.score,
        keys=[time_column, *datasets.inputs(holdout, spec).columns],
    )
    return replay(
        joined,
        time_column=time_column,
        metric=METRICS[spec.metric.name],
        days=settings.days,
        min_share=settings.min_share,
        scored_rows=len(served),
        classes=predicted.classes,
    )


def _naive_utc(times: Any) -> Any:
    import pandas as pd  # heavy: definitions load without pandas

    return pd.to_datetime(times, utc=True).dt.tz_localize(None)
