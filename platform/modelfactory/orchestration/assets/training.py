"""The training step: `candidate`, train.py's estimator on the training rows, logged as an
MLflow run, registered as a model version (alias `challenger`) and recorded in the audit
trail with what it was trained on.
"""

import dataclasses
import json
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from modelfactory.ml import datasets, monitoring
from modelfactory.orchestration.assets.shared import Graph, scored
from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import unit_of
from modelfactory.stores import snapshots
from modelfactory.stores.audit import AuditLog
from modelfactory.stores.home import snapshot_root
from modelfactory.stores.registry import LoggedCandidate, ModelRegistry, environment

__all__ = ["training_assets"]


def training_assets(graph: Graph) -> list[AssetsDefinition]:
    project, spec, key = graph.project, graph.spec, graph.key

    @asset(
        key=key["candidate"],
        ins={"split": AssetIn(key["split"])},
        kinds={"scikit-learn", "mlflow"},
        required_resource_keys={"model_registry", "audit"},
        description=(
            f"{project.shown('train.py')}: train(X, y, params) on the training rows, logged as "
            "an MLflow run and registered as a model version with alias 'challenger'."
        ),
        freshness_policy=graph.fresh.get("candidate"),
        **graph.common,
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
        train_scores = scored(spec, estimator, X, y, slices=False).scores
        data_hash = datasets.content_hash(split)
        logged = registry.log_candidate(
            model=model,
            estimator=estimator,
            X_sample=X.head(50),
            params=_as_dict(params),
            metrics={f"train_{k}": v for k, v in train_scores.items()},
            tags=_run_tags(project, context.run_id, split, model, data_hash, params, len(X)),
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
            metadata=_candidate_metadata(registry, model, logged, data_hash, len(X), train_scores)
            | {"params": MetadataValue.json(_as_dict(params))},
        )

    return [candidate]


def _run_tags(
    project: ModelProject,
    run_id: str,
    split: Any,
    model: str,
    data_hash: str,
    params: Any,
    train_rows: int,
) -> dict[str, str]:
    """The MLflow run's tags: what it was trained on and with, so it can be reproduced (the
    training rows are kept as a snapshot, named by their content hash)."""
    return {
        "mf.data_hash": data_hash,
        "mf.snapshot": snapshots.keep(split, snapshot_root(), model, data_hash),
        "mf.code_version": project.code_version,
        "mf.git_sha": project.git_sha or "unknown",
        "mf.dagster_run_id": run_id,
        "mf.train_rows": str(train_rows),
        "mf.params": json.dumps(_as_dict(params), default=str),  # typed, for reproduce
    }


def _candidate_metadata(
    registry: ModelRegistry,
    model: str,
    logged: LoggedCandidate,
    data_hash: str,
    train_rows: int,
    train_scores: dict[str, float],
) -> dict[str, Any]:
    return {
        "model_version": logged.version,
        "mlflow_run": MetadataValue.url(registry.run_url(logged.experiment_id, logged.run_id)),
        "mlflow_model_version": MetadataValue.url(registry.version_url(model, logged.version)),
        "data_hash": data_hash,
        "train_rows": train_rows,
        **{f"train_{k}": v for k, v in train_scores.items()},
    }


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


def _as_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)
