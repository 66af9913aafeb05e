"""The asset factory: one model project in, its Dagster assets, checks and jobs out.

    raw ──► features ──► split ──► candidate ──► evaluation ──► champion ──► endpoint
    (pandera, blocking)            (MLflow run,   (vs champion,  (alias moves   (canary
                                    registered)    thresholds,    only through   rollout)
                                                   slices)        the gate)
              features ──► predictions (batch, champion)         endpoint ──► live_metrics
              split ──► drift_report (Evidently, captured requests vs training inputs)

This is the only module that knows Dagster's asset API; the project's functions stay plain.
Keys are `<model>/<step>`, grouped by model, with owner, kinds and tags applied here once.
"""

import json
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from modelfactory.errors import ProjectError
from modelfactory.lifecycle.approval import (
    ANNOUNCED_TAG,
    approve_command,
    awaiting_alert,
    latest_evaluation,
    refusal,
)
from modelfactory.ml import datasets, gate, monitoring
from modelfactory.ml.evaluation import (
    METRICS,
    improvement_needed,
)
from modelfactory.ml.replay import replay, served_with_outcomes
from modelfactory.orchestration.batch import read_scored
from modelfactory.orchestration.metadata import frame_metadata
from modelfactory.orchestration.partitions import partitions_def
from modelfactory.orchestration.production_assets import build_production_assets
from modelfactory.orchestration.run_tags import model_pool
from modelfactory.orchestration.schedules import freshness_policies
from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import cli_args, rows_of, unit_of
from modelfactory.reports.model_card import gather, render_html, render_markdown
from modelfactory.stores import snapshots
from modelfactory.stores.audit import APPROVED_BY, AuditLog, by_whom
from modelfactory.stores.home import inference_store, local_home, snapshot_root, warehouse_kind
from modelfactory.stores.notify import Alert, Notifier
from modelfactory.stores.registry import (
    HOLDOUT_TAG,
    AliasMove,
    LoggedCandidate,
    ModelRegistry,
    environment,
)
from modelfactory.stores.rollouts import Rollout, RolloutStore
from modelfactory.stores.urls import dagster_run_url, endpoint_url

__all__ = [
    "PromotionConfig",
    "build_assets",
    "drift_report_job_name",
    "live_metrics_job_name",
    "predict_job_name",
    "refresh_job_name",
    "train_job_name",
]

STEPS = (
    "raw",
    "features",
    "split",
    "candidate",
    "evaluation",
    "champion",
    "endpoint",
    "model_card",
)
SIDE_STEPS = ("predictions", "drift_report", "live_metrics")  # not part of a retrain


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


def train_job_name(model: str) -> str:
    return f"{model}_train"


def drift_report_job_name(model: str) -> str:
    return f"{model}_drift_report"


def predict_job_name(model: str) -> str:
    return f"{model}_predict"


def live_metrics_job_name(model: str) -> str:
    return f"{model}_live_metrics"


def refresh_job_name(model: str) -> str:
    return f"{model}_refresh"


def build_assets(project: ModelProject) -> list[AssetsDefinition]:
    spec = project.spec
    name = spec.name
    key = {step: AssetKey([name, step]) for step in STEPS + SIDE_STEPS}
    common: dict[str, Any] = {
        "group_name": name,
        "owners": [spec.owner],
        "tags": {"modelfactory/model": name, "modelfactory/task": spec.task},
        "pool": model_pool(name),  # one run of a model at a time, from the UI too
        "code_version": project.code_version,
        "partitions_def": partitions_def(spec),  # one partition per segment, if segmented
    }
    # The warehouse replaces one segment's rows at a time, selected by this column.
    stored = {"partition_expr": spec.segments.by} if spec.segments else {}
    metric = METRICS[spec.metric.name]

    canary = spec.serving.canary
    fresh = freshness_policies(spec)  # from the schedules; none for an unscheduled model

    @asset(
        key=key["raw"],
        io_manager_key="warehouse",
        metadata=stored,
        kinds={"python", warehouse_kind()},
        description=f"Raw rows from {project.shown('features.py')}: load_raw. {spec.description}",
        check_specs=[_schema_check_spec(key["raw"], "raw_schema", "RawSchema")],
        **common,
    )
    def raw(context: AssetExecutionContext) -> Iterator[Any]:
        frame = project.function("features", "load_raw")(local_home().data(name))
        if spec.segments:
            frame = _segment_rows(project, frame, context.partition_key, "load_raw")
        yield from _validated(project, frame, "load_raw", "RawSchema", "raw_schema")

    @asset(
        key=key["features"],
        ins={"raw": AssetIn(key["raw"])},
        io_manager_key="warehouse",
        metadata=stored,
        kinds={"python", warehouse_kind()},
        description=f"Inputs and target from {project.shown('features.py')}: build_features.",
        check_specs=[_schema_check_spec(key["features"], "features_schema", "FeatureSchema")],
        freshness_policy=fresh.get("features"),
        **common,
    )
    def features(context: AssetExecutionContext, raw: Any) -> Iterator[Any]:
        frame = project.function("features", "build_features")(raw)
        if spec.segments:  # the endpoint routes requests by this column: it must stay
            frame = _segment_rows(project, frame, context.partition_key, "build_features")
        yield from _validated(project, frame, "build_features", "FeatureSchema", "features_schema")

    @asset(
        key=key["split"],
        ins={"features": AssetIn(key["features"])},
        io_manager_key="warehouse",
        metadata=stored,
        kinds={"python", warehouse_kind()},
        description=(
            f"Features marked train/test ({spec.split.test_size:.0%} holdout"
            + (f", latest by {spec.split.by}" if spec.split.by else ", seeded random")
            + "). Candidate and champion are scored on the same holdout."
        ),
        **common,
    )
    def split(context: AssetExecutionContext, features: Any) -> Output:
        frame = datasets.split_frame(features, spec)
        counts = frame[datasets.SPLIT_COLUMN].value_counts()
        return Output(
            frame,
            metadata={
                **frame_metadata(frame, preview=False),
                "train_rows": int(counts.get("train", 0)),
                "test_rows": int(counts.get("test", 0)),
            },
        )

    @asset(
        key=key["candidate"],
        ins={"split": AssetIn(key["split"])},
        kinds={"scikit-learn", "mlflow"},
        required_resource_keys={"model_registry", "audit"},
        description=(
            f"{project.shown('train.py')}: train(X, y, params) on the training rows, logged as "
            "an MLflow run and registered as a model version with alias 'challenger'."
        ),
        freshness_policy=fresh.get("candidate"),
        **common,
    )
    def candidate(context: AssetExecutionContext, split: Any) -> Output:
        registry: ModelRegistry = context.resources.model_registry
        model = unit_of(context)
        X, y = datasets.xy(split, spec, "train")
        params = project.params()
        estimator = project.function("train", "train")(X, y, params)
        if not hasattr(estimator, "predict"):
            raise Failure(
                f"{project.shown('train.py')}: train must return a fitted estimator with "
                f"predict(), got {type(estimator).__name__}"
            )
        train_scores = _scored(spec, estimator, X, y, slices=False).scores
        data_hash = datasets.content_hash(split)
        tags = {
            "mf.data_hash": data_hash,
            "mf.snapshot": snapshots.keep(split, snapshot_root(), model, data_hash),
            "mf.code_version": project.code_version,
            "mf.git_sha": project.git_sha or "unknown",
            "mf.dagster_run_id": context.run_id,
            "mf.train_rows": str(len(X)),
            "mf.params": json.dumps(_as_dict(params), default=str),  # typed, for reproduce
        }
        logged = registry.log_candidate(
            model=model,
            estimator=estimator,
            X_sample=X.head(50),
            params=_as_dict(params),
            metrics={f"train_{k}": v for k, v in train_scores.items()},
            tags=tags,
            reference_profile=monitoring.profile(X).to_json(),
        )
        registry.tag_version(model, logged.version, _data_summary(split, spec))  # for its card
        audit: AuditLog = context.resources.audit
        audit.record_training(
            unit=model,
            version=logged.version,
            dagster_run_id=context.run_id,
            data_hash=data_hash,
            code_version=project.code_version,
            git_sha=project.git_sha or "unknown",
            params=_as_dict(params),
            environment=environment(),
        )
        return Output(
            logged,
            metadata={
                "model_version": logged.version,
                "mlflow_run": MetadataValue.url(
                    registry.run_url(logged.experiment_id, logged.run_id)
                ),
                "mlflow_model_version": MetadataValue.url(
                    registry.version_url(model, logged.version)
                ),
                "data_hash": data_hash,
                "train_rows": len(X),
                **{f"train_{k}": v for k, v in train_scores.items()},
                "params": MetadataValue.json(_as_dict(params)),
            },
        )

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
        check_specs=[
            AssetCheckSpec(
                "beats_champion",
                asset=key["evaluation"],
                description=(
                    f"Candidate's {metric.name} beats the champion's on the holdout by "
                    f"{improvement_needed(spec.promotion.min_improvement)} (relative)."
                ),
            ),
            AssetCheckSpec(
                "meets_thresholds",
                asset=key["evaluation"],
                description="Every promotion.thresholds bound holds on the holdout.",
            ),
            AssetCheckSpec(
                "slice_gap",
                asset=key["evaluation"],
                description="No slice's metric strays beyond promotion.slices.max_gap.",
            ),
            *(
                [
                    AssetCheckSpec(
                        "replay",
                        asset=key["evaluation"],
                        description=(
                            "On the last promotion.replay.days days scored by day, the "
                            "candidate does at least as well as what served, often enough."
                        ),
                    )
                ]
                if spec.promotion.replay
                else []
            ),
        ],
        **common,
    )
    def evaluation(
        context: AssetExecutionContext, split: Any, candidate: LoggedCandidate
    ) -> Iterator[Any]:
        registry: ModelRegistry = context.resources.model_registry
        model = unit_of(context)
        X, y = datasets.xy(split, spec, "test")
        scored = _scored(spec, registry.load(model, candidate.version), X, y)
        scores, slices, classes_table = scored.scores, scored.slices, scored.per_class

        champion = registry.champion(model)
        champion_scores = None
        if champion is not None:
            try:
                champion_model = registry.load(model, champion.version)
                champion_scores = gate.score(spec, champion_model, X, y, slices=False).scores
            except Exception as exc:
                raise Failure(
                    f"{model}: champion v{champion.version} could not be loaded or scored on the "
                    f"holdout ({type(exc).__name__}: {exc}). Roll back with "
                    f"`modelfactory rollback {cli_args(model)}` or promote a candidate by hand."
                ) from exc

        worst_gap = scored.worst_gap
        replayed = None
        if spec.promotion.replay is not None and champion is not None:
            segment = context.partition_key if spec.segments else None
            replayed = _replay(project, split, segment, scored.predicted)

        verdict = gate.judge(
            spec,
            scored,
            champion_scores,
            replay=(replayed.passed, replayed.describe()) if replayed else None,
        )
        registry.log_run_metrics(candidate.run_id, {f"test_{k}": v for k, v in scores.items()})
        registry.tag_version(
            model,
            candidate.version,
            {
                "mf.verdict": "passed" if verdict.passed else "failed",
                "mf.verdict_reasons": "; ".join(verdict.reasons),
                "mf.compared_with": champion.version if champion else "none",
                "mf.holdout_rows": str(len(X)),
                **{f"{HOLDOUT_TAG}{k}": f"{v:.6g}" for k, v in scores.items()},
                **(_slices_tags(slices) if slices is not None else {}),
                **(_per_class_tags(classes_table) if classes_table is not None else {}),
            },
        )
        audit: AuditLog = context.resources.audit
        audit.record_evaluation(
            unit=model,
            version=candidate.version,
            dagster_run_id=context.run_id,
            compared_with=champion.version if champion else None,
            passed=verdict.passed,
            metrics=scores,
            summary=verdict.summary,
        )
        result = {
            "candidate": candidate,
            "champion_version": champion.version if champion else None,
            "scores": scores,
            "champion_scores": champion_scores,
            "passed": verdict.passed,
            "summary": verdict.summary,
        }
        yield Output(
            result,
            metadata={
                "candidate_version": candidate.version,
                "champion_version": champion.version if champion else "none",
                "verdict": "passed" if verdict.passed else "failed",
                "reasons": MetadataValue.md("\n".join(f"- {r}" for r in verdict.reasons)),
                **{f"holdout_{k}": v for k, v in scores.items()},
                **{f"champion_{k}": v for k, v in (champion_scores or {}).items()},
                **(
                    {"slices": MetadataValue.md(slices.to_markdown(index=False))}
                    if slices is not None
                    else {}
                ),
                **(
                    {"per_class": MetadataValue.md(classes_table.to_markdown(index=False))}
                    if classes_table is not None
                    else {}
                ),
                **(
                    {"replay": MetadataValue.md(replayed.table.to_markdown(index=False))}
                    if replayed is not None and replayed.days
                    else {}
                ),
            },
        )
        yield AssetCheckResult(
            check_name="beats_champion",
            passed=verdict.beats_champion,
            severity=AssetCheckSeverity.WARN,
            description=verdict.reasons[0],
            metadata={
                "candidate": scores[metric.name],
                "champion": champion_scores[metric.name] if champion_scores else "none",
            },
        )
        yield AssetCheckResult(
            check_name="meets_thresholds",
            passed=verdict.meets_thresholds,
            severity=AssetCheckSeverity.WARN,
            metadata={k: v for k, v in scores.items() if k in spec.promotion.thresholds},
        )
        yield AssetCheckResult(
            check_name="slice_gap",
            passed=verdict.slices_ok,
            severity=AssetCheckSeverity.WARN,
            metadata={"worst_gap": worst_gap if worst_gap is not None else "not configured"},
        )
        if spec.promotion.replay is not None:
            yield AssetCheckResult(
                check_name="replay",
                passed=verdict.replay_ok,
                severity=AssetCheckSeverity.WARN,
                description=replayed.describe() if replayed else "no champion: nothing served",
                metadata={
                    "days": replayed.days if replayed else 0,
                    "wins": replayed.wins if replayed else 0,
                },
            )

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
        **common,
    )
    def champion(
        context: AssetExecutionContext, config: PromotionConfig, evaluation: dict
    ) -> Output:
        registry: ModelRegistry = context.resources.model_registry
        model = unit_of(context)
        candidate: LoggedCandidate = evaluation["candidate"]
        champion_now = registry.champion(model)
        current = champion_now.version if champion_now else None
        who = config.approved_by.strip()
        # An approval names a version, or is a person's under policy manual; under policy
        # auto an `approved_by` alone (`train --approve` of every model) leaves it to the gate.
        approving = config.version.strip() or (who and spec.promotion.policy == "manual")

        if approving:
            version = config.version.strip().removeprefix("v") or candidate.version
            problem = (
                refusal(registry, model, version, candidate.version)
                if who
                else f"{model}: the config names version {version} but not who approves it: "
                "set `approved_by`"
            )
            if problem is not None:
                raise Failure(problem)
            reason = config.reason or f"approved: gate {evaluation['summary']}"
            return _promote(context, spec, evaluation, actor=APPROVED_BY + who, reason=reason)
        if current == candidate.version:  # promoted already, by an earlier run of this asset
            decision = f"v{current} is the champion: it is the evaluated candidate"
            return _champion_output(registry, model, current, promoted=False, decision=decision)
        if not evaluation["passed"]:
            kept = f"kept v{current}" if current else "no champion yet"
            decision = f"{kept}: candidate v{candidate.version} {evaluation['summary']}"
            return _champion_output(registry, model, current, promoted=False, decision=decision)
        if spec.promotion.policy == "manual":
            return _awaiting_approval(context, spec, evaluation, current)
        reason = config.reason or f"auto: gate {evaluation['summary']}"
        return _promote(context, spec, evaluation, actor=f"dagster:{context.run_id}", reason=reason)

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
        **common,
    )
    def endpoint(context: AssetExecutionContext, champion: dict) -> Output:
        rollouts: RolloutStore = context.resources.rollouts
        model = unit_of(context)
        rollout = rollouts.active(model)
        if rollout is not None and rollout.state == "pending":
            rollout = rollouts.start(rollout, reason=f"started by run {context.run_id}")
            context.log.info(f"{model}: rollout {rollout.describe()}")
        rollout = rollout or rollouts.latest(model)
        return _endpoint_output(name, champion.get("version"), rollout)

    @asset(
        key=key["model_card"],
        # It reads the registry and these assets' latest metadata, not their values.
        deps=[key["champion"], key["drift_report"], key["live_metrics"]],
        kinds={"mlflow"},
        required_resource_keys={"model_registry"},
        description=(
            "The champion's model card: owner, intended use, assumptions and limitations, "
            "holdout metrics overall and per slice, training data, drift and live metric, "
            "links. Stored as model_card.md/.html with the champion's MLflow run."
        ),
        **common,
    )
    def model_card(context: AssetExecutionContext) -> Output:
        registry: ModelRegistry = context.resources.model_registry
        model = unit_of(context)
        segment = context.partition_key if spec.segments else None
        facts = gather(project, registry, context.instance, model, segment)
        markdown = render_markdown(facts)
        stored = "not stored: no champion yet"
        if facts.champion is not None and not facts.champion.run_id:
            stored = f"not stored: v{facts.champion.version} has no MLflow run"
        elif facts.champion is not None:
            html = render_html(markdown, f"Model card: {model}")
            stored = registry.log_card(facts.champion.run_id, markdown, html)
        return Output(
            markdown,
            metadata={
                "card": MetadataValue.md(markdown),
                "champion_version": facts.champion.version if facts.champion else "none",
                "stored_at": stored,
            },
        )

    return [
        raw,
        features,
        split,
        candidate,
        evaluation,
        champion,
        endpoint,
        model_card,
        *build_production_assets(project, key, common, fresh),
    ]


def _replay(project: ModelProject, split: Any, segment: str | None, predicted: Any) -> Any:
    """The candidate's holdout predictions against the batch scores stored for the same rows:
    the replay part of the gate (replay.py)."""
    import pandas as pd

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


def _scored(spec: Any, estimator: Any, X: Any, y: Any, *, slices: bool = True) -> gate.Scored:
    """gate.score, with a project's mistake (a metric it cannot compute) as a Failure."""
    try:
        return gate.score(spec, estimator, X, y, slices=slices)
    except ProjectError as exc:
        raise Failure(str(exc)) from None


def _data_summary(split: Any, spec: Any) -> dict[str, str]:
    """Version tags describing the training rows, for the model card: their time range
    (split.by) and the inputs' schema."""
    train = split[split[datasets.SPLIT_COLUMN] == "train"]
    schema = {column: str(dtype) for column, dtype in datasets.inputs(train, spec).dtypes.items()}
    summary = {"mf.schema": json.dumps(schema)}
    if spec.split.by and len(train):
        times = train[spec.split.by]
        summary["mf.time_range"] = f"{times.min()} .. {times.max()}"
    return summary


def _slices_tags(slices: Any, limit: int = 20_000) -> dict[str, str]:
    """The slice report as version tags for the model card: largest gaps first, cut to whole
    records under `limit` characters when there are very many slices (the count says so)."""
    ordered = slices.sort_values("gap", ascending=False, na_position="last")
    records = json.loads(ordered.to_json(orient="records"))
    text = json.dumps(records)
    while len(text) > limit:
        records = records[: len(records) // 2]
        text = json.dumps(records)
    return {"mf.slices": text, "mf.slices_total": str(len(slices))}


def _per_class_tags(table: Any, limit: int = 20_000) -> dict[str, str]:
    """The per-class scores as one version tag for the model card and live metrics; left out
    (the metadata table still shows them) when a model has too many classes to fit."""
    text = table.to_json(orient="records", double_precision=6)
    return {"mf.per_class": text} if len(text) <= limit else {}


def _naive_utc(times: Any) -> Any:
    import pandas as pd

    return pd.to_datetime(times, utc=True).dt.tz_localize(None)


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


def _promote(
    context: AssetExecutionContext, spec: Any, evaluation: dict, *, actor: str, reason: str
) -> Output:
    """The one way a promotion happens, automatic or approved: reserve the canary rollout,
    move the alias (refused if the champion moved since the evaluation), record the move in
    the audit trail and announce it. `<model>/endpoint` then starts the rollout and
    `<model>/model_card` describes the new champion."""
    registry: ModelRegistry = context.resources.model_registry
    model = unit_of(context)
    candidate: LoggedCandidate = evaluation["candidate"]
    current = evaluation["champion_version"]
    rollouts: RolloutStore = context.resources.rollouts
    # Reserved before the alias moves: the endpoint keeps serving the old champion until
    # `<model>/endpoint` starts the canary, never the new one to everyone in between.
    reserved = None
    if current is not None:
        reserved = rollouts.reserve(
            model,
            stable=current,
            canary=candidate.version,
            spec=spec.serving.canary,
            reason=reason,
        )
    try:
        move = registry.promote(
            model,
            candidate.version,
            expected_current=current,
            actor=actor,
            reason=reason,
            dagster_run_id=context.run_id,
            metrics_before=evaluation["champion_scores"] or {},
            metrics_after=evaluation["scores"],
        )
    except Exception:
        if reserved is not None:
            rollouts.finish(reserved, "cancelled", "the promotion failed")
        raise
    context.resources.audit.record_move(move)
    context.log.info(f"{model}: champion v{move.from_version} -> v{move.to_version} ({reason})")
    notifier: Notifier = context.resources.notifier
    notifier.send(
        Alert(
            model=model,
            event="promoted",
            severity="info",
            text=(
                f"champion v{move.from_version or 'none'} -> v{move.to_version} "
                f"{by_whom(actor)} ({reason}); the endpoint rolls it out by canary"
            ),
            links={
                "run": dagster_run_url(context.run_id),
                f"v{move.to_version} in MLflow": registry.version_url(model, move.to_version),
            },
        )
    )
    return _champion_output(
        registry, model, candidate.version, promoted=True, decision=reason, move=move
    )


def _awaiting_approval(
    context: AssetExecutionContext, spec: Any, evaluation: dict, current: str | None
) -> Output:
    """Policy manual, gate passed: nothing moves. The wait is announced once per candidate
    (the version keeps the time it was, so a second materialization stays quiet), with a
    link to the evaluation and the command that approves it."""
    registry: ModelRegistry = context.resources.model_registry
    model = unit_of(context)
    version = evaluation["candidate"].version
    found = registry.version(model, version)
    announced = found.tags.get(ANNOUNCED_TAG) if found is not None else None
    if announced is None:
        segment = context.partition_key if spec.segments else None
        evaluated = latest_evaluation(context.instance, spec.name, segment)
        notifier: Notifier = context.resources.notifier
        alert = awaiting_alert(registry, model, version, evaluation["summary"], evaluated)
        notifier.send(alert)
        registry.tag_version(model, version, {ANNOUNCED_TAG: alert.at})
        announced = alert.at
    decision = (
        f"awaiting approval: candidate v{version} {evaluation['summary']}. Approve it with "
        f"`{approve_command(model, version)}`, or materialize this asset with config "
        "`approved_by: <you>` (Launchpad)."
    )
    return _champion_output(
        registry,
        model,
        current,
        promoted=False,
        decision=decision,
        extra={"awaiting_approval": f"v{version}", "announced_at": announced},
    )


def _champion_output(
    registry: ModelRegistry,
    model: str,
    version: str | None,
    *,
    promoted: bool,
    decision: str,
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


def _segment_rows(project: ModelProject, frame: Any, segment: str, function: str) -> Any:
    """One segment's rows of a project function's output, or a Failure saying what is wrong."""
    what = f"{project.shown('features.py')}: {function}"
    try:
        return rows_of(frame, project.spec, segment, what)
    except ProjectError as exc:
        raise Failure(str(exc)) from None


def _validated(
    project: ModelProject, frame: Any, function: str, schema: str, check: str
) -> Iterator[Any]:
    """Store the frame whatever its verdict (bad data stays for inspection), then the check.

    The check is blocking at ERROR severity: Dagster fails the step, so nothing downstream
    runs and the run fails.
    """
    what = f"{project.shown('features.py')}: {function}"
    outcome = datasets.validate_frame(project.schema(schema), frame, what=what)
    yield Output(outcome.frame, metadata=frame_metadata(outcome.frame))
    yield _schema_check_result(check, outcome)


def _schema_check_spec(asset_key: AssetKey, check: str, schema: str) -> AssetCheckSpec:
    return AssetCheckSpec(
        check,
        asset=asset_key,
        blocking=True,
        description=f"Rows pass schemas.py:{schema} (pandera); a failure stops all downstream.",
    )


def _schema_check_result(check: str, outcome: datasets.ValidationOutcome) -> AssetCheckResult:
    metadata: dict[str, Any] = {"rows": len(outcome.frame)}
    if outcome.failures is not None:
        metadata["failure_count"] = len(outcome.failures)
        metadata["failure_cases"] = MetadataValue.md(
            outcome.failures.head(20).to_markdown(index=False)
        )
    return AssetCheckResult(
        check_name=check,
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR,
        description=outcome.describe(),
        metadata=metadata,
    )


def _as_dict(params: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)
