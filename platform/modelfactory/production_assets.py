"""The assets that watch a model in production, beside the training graph:

    features ──► predictions     batch scores by the champion, into the warehouse
    split ─────► drift_report    Evidently: live inputs vs training inputs (+ quality, once
                                 labels arrived)
    endpoint ──► live_metrics    captured predictions joined with late labels, per version

None is part of a retrain; each has its own job (`<model>_predict`, `<model>_drift_report`,
`<model>_live_metrics`), requested by a schedule or by the sensor that found a reason.

Dagster reads the asset functions' annotations at definition time, so this module does not
postpone them (no `from __future__ import annotations`); pandas types are quoted instead.
"""

from typing import TYPE_CHECKING, Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Failure,
    FreshnessPolicy,
    MetadataValue,
    Output,
    asset,
)

from modelfactory import datasets, monitoring
from modelfactory.assets import frame_metadata
from modelfactory.batch import (
    SEGMENT,
    day_and_segment,
    predictions_partitions,
    predictions_storage,
    rows_of_day,
)
from modelfactory.evaluation import METRICS, predict_with_scores
from modelfactory.live import champion_holdout
from modelfactory.project import ModelProject
from modelfactory.registry import ModelRegistry, VersionInfo
from modelfactory.resources import ArtifactStore, inference_store, label_folder, warehouse_kind
from modelfactory.segments import cli_args, segment_model, unit_of

if TYPE_CHECKING:
    import pandas as pd

    from modelfactory.live import LiveVerdict

__all__ = ["build_production_assets"]


def build_production_assets(
    project: ModelProject,
    key: dict[str, AssetKey],
    common: dict[str, Any],
    fresh: dict[str, FreshnessPolicy],
) -> list[AssetsDefinition]:
    """`common` carries the group, owners, tags and code version every asset of the model has."""
    spec = project.spec
    name = spec.name
    metric = METRICS[spec.metric.name]

    @asset(
        key=key["drift_report"],
        ins={"split": AssetIn(key["split"])},
        kinds={"evidently"},
        required_resource_keys={"model_registry", "artifact_store"},
        description=(
            f"An Evidently report (HTML) of the latest {spec.drift.window} captured requests "
            f"against the training inputs, with the drift share ({spec.drift.method}) as "
            f"metadata so the UI plots it over time; once labels arrived, a second report of the "
            f"champion's {spec.task} quality on them vs on the holdout. The {name}_drift sensor "
            "requests it when it finds drift."
        ),
        **common,
    )
    def drift_report(context: AssetExecutionContext, split: Any) -> Output:
        from datetime import UTC, datetime

        from modelfactory.serving.capture import inference_log_table, read_recent

        unit = unit_of(context)
        reference, _ = datasets.xy(split, spec, "train")
        current = read_recent(inference_store(unit), unit, spec.drift.window)
        if current.empty:
            raise Failure(
                f"{unit}: no captured requests in {inference_log_table(unit)} yet; the report "
                f"compares live traffic with the training data (serve with `modelfactory serve`)"
            )
        current = current[[c for c in reference.columns if c in current.columns]]
        result = monitoring.compare(monitoring.profile(reference), current, spec.drift)
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        of = f"{context.partition_key}-" if spec.segments else ""  # whose report, by name
        reports: ArtifactStore = context.resources.artifact_store
        path = monitoring.evidently_report(
            reference, current, reports.local_path(name, f"drift-{of}{stamp}.html")
        )
        location = reports.publish(path, name)
        registry: ModelRegistry = context.resources.model_registry
        quality = _labelled_quality(project, registry, split, unit)
        extra: dict[str, Any] = {"labelled_rows": 0}
        if quality is not None:  # the champion on its holdout vs on labelled live rows
            holdout, labelled, outcomes = quality
            extra["labelled_rows"] = len(labelled)
            report = reports.local_path(name, f"quality-{of}{stamp}.html")
            monitoring.evidently_quality_report(holdout, labelled, report, outcomes)
            extra["quality_report"] = _report_link(reports.publish(report, name))
        return Output(
            {"path": location, **monitoring.as_dict(result)},
            metadata={
                "drift_share": result.share,
                "drifted": result.drifted,
                "drifted_columns": ", ".join(result.drifted_columns) or "none",
                "current_rows": len(current),
                "reference_rows": len(reference),
                "report": _report_link(location),
                **extra,
                "summary": result.describe(),
            },
        )

    @asset(
        key=key["predictions"],
        ins={"features": AssetIn(key["features"], partition_mapping=_features_of_run(spec))},
        io_manager_key="warehouse",
        metadata=predictions_storage(spec),
        kinds={"scikit-learn", warehouse_kind()},
        required_resource_keys={"model_registry"},
        description=(
            (
                f"Batch scores by day (from {spec.predictions.daily_from}): the features rows "
                f"of each day (by {spec.split.by}), scored by the champion of the moment, with "
                "the version that scored them"
                if spec.predictions
                else "Batch scores: every row of the latest features scored by the champion, "
                "with the version that scored it"
            )
            + (f"; refreshed on `{spec.schedule.predict}` (UTC)." if spec.schedule.predict else ".")
        ),
        freshness_policy=fresh.get("predictions"),
        **{**common, "partitions_def": predictions_partitions(spec)},
    )
    def predictions(context: AssetExecutionContext, features: Any) -> Output:
        registry: ModelRegistry = context.resources.model_registry
        day, segment = day_and_segment(context, spec)
        if day is not None:
            features = rows_of_day(features, spec.split.by, day)  # type: ignore[arg-type]
        model = segment_model(name, segment)
        champion = registry.champion(model)
        if champion is None:
            raise Failure(
                f"{model}: no champion to score with yet; train one first "
                f"(`modelfactory train {cli_args(model)}` or materialize {name}/champion)"
            )
        scored = features.drop(columns=[spec.target], errors="ignore").assign(
            prediction=float("nan"), model_version=champion.version
        )
        if len(features):  # a day without rows stores none, and says so
            X = datasets.inputs(features, spec)
            predicted = predict_with_scores(registry.load(model, champion.version), X)
            scored = scored.assign(prediction=predicted.labels)
            if predicted.score is not None:
                scored = scored.assign(score=predicted.score)
        return Output(
            scored,
            metadata={
                **frame_metadata(scored),
                "champion_version": champion.version,
                **_prediction_summary(scored["prediction"]),
                **({"day": day.isoformat()} if day else {}),
            },
        )

    @asset(
        key=key["live_metrics"],
        deps=[key["endpoint"]],
        io_manager_key="warehouse",
        metadata={"partition_expr": "segment"} if spec.segments else {},
        kinds={warehouse_kind()},
        required_resource_keys={"model_registry"},
        description=(
            f"Every standard metric per served version, from captured predictions joined with "
            f"labels that arrived later (files under labels/{name}/ in the Model Factory "
            f"home; in production, under that prefix in the S3 bucket). The "
            f"{name}_live_metric sensor retrains when the champion's {metric.name} "
            f"falls more than {spec.live_metric.tolerance:.0%} behind its holdout value."
        ),
        **common,
    )
    def live_metrics(context: AssetExecutionContext) -> Output:
        from modelfactory import live
        from modelfactory.serving.capture import read_labelled

        registry: ModelRegistry = context.resources.model_registry
        unit = unit_of(context)
        labels = live.find_labels(label_folder(name))
        labelled = read_labelled(
            inference_store(unit),
            unit,
            labels.files,
            target=spec.target,
            limit=spec.live_metric.window,
        )
        table = live.version_metrics(labelled, spec.task)
        if spec.segments:  # one table for the model: each segment's rows say whose they are
            table = table.assign(segment=context.partition_key)
        metadata: dict[str, Any] = {
            "label_files": len(labels.files),
            "labelled_rows": len(labelled),
            "by_version": MetadataValue.md(
                table.to_markdown(index=False) if len(table) else "no labelled predictions yet"
            ),
        }
        if spec.task == "classification" and len(labelled):
            classes = live.version_classes(labelled)
            metadata["per_class"] = MetadataValue.md(classes.to_markdown(index=False))
        champion = registry.champion(unit)
        if champion is not None:
            verdict = live.judge(
                labelled,
                version=champion.version,
                task=spec.task,
                metric=metric.name,
                holdout=champion_holdout(champion.tags, metric.name),
                spec=spec.live_metric,
            )
            metadata.update(_live_metadata(verdict))
        return Output(table, metadata=metadata)

    return [predictions, drift_report, live_metrics]


def _features_of_run(spec: Any) -> Any:
    """A segmented model's daily predictions read their segment's features; otherwise the
    default mapping holds (the same partition, or all of unpartitioned features)."""
    import warnings

    from dagster import BetaWarning, MultiToSingleDimensionPartitionMapping

    if spec.predictions is None or spec.segments is None:
        return None
    with warnings.catch_warnings():  # beta in Dagster 1.13, and the one mapping that fits
        warnings.simplefilter("ignore", BetaWarning)
        return MultiToSingleDimensionPartitionMapping(partition_dimension_name=SEGMENT)


def _report_link(location: str) -> MetadataValue:
    """A local report opens from the UI as a path; one in S3 shows its URI."""
    if location.startswith("s3://"):
        return MetadataValue.url(location)
    return MetadataValue.path(location)


def _labelled_quality(
    project: ModelProject, registry: ModelRegistry, split: "pd.DataFrame", unit: str
) -> "tuple[pd.DataFrame, pd.DataFrame, monitoring.Outcomes] | None":
    """The champion's holdout and its labelled live rows, each with target and prediction,
    for the report's quality section; None until labels for the champion arrived. `unit` is
    the model, or the segment (`<model>.<segment>`) the split belongs to."""
    from modelfactory.live import find_labels
    from modelfactory.serving.capture import captured_inputs, read_labelled

    spec = project.spec
    champion: VersionInfo | None = registry.champion(unit)
    labels = find_labels(label_folder(spec.name))
    if champion is None or not labels.files:
        return None
    labelled = read_labelled(
        inference_store(unit),
        unit,
        labels.files,
        target=spec.target,
        limit=spec.drift.window,
    )
    mine = labelled[labelled["model_version"].astype(str) == champion.version]
    if mine.empty:
        return None
    X, y = datasets.xy(split, spec, "test")
    predicted = predict_with_scores(registry.load(unit, champion.version), X)
    y_pred, y_score = predicted.labels, predicted.score
    outcomes = monitoring.Outcomes(
        task=spec.task,
        target=spec.target,
        prediction=f"predicted_{spec.target}",
        score=f"score_{spec.target}" if y_score is not None else None,
    )
    reference = X.assign(**{outcomes.target: y.to_numpy(), outcomes.prediction: y_pred})
    current = captured_inputs(mine["features"])[list(X.columns)].assign(
        **{
            outcomes.target: mine["label"].to_numpy(),
            outcomes.prediction: mine["prediction"].to_numpy(),
        }
    )
    if spec.task == "classification":  # the log and label files may hold classes as floats
        for column, like in ((outcomes.prediction, y_pred), (outcomes.target, y)):
            current[column] = current[column].astype(like.dtype)
    if outcomes.score:
        reference[outcomes.score] = y_score
        current[outcomes.score] = mine["score"].to_numpy()
    return reference, current, outcomes


def _prediction_summary(predictions: Any) -> dict[str, Any]:
    """The mean of numeric predictions, or how often each class was predicted (a classifier's
    labels may be strings)."""
    import pandas as pd

    if not len(predictions):
        return {"prediction_mean": "none"}
    if pd.api.types.is_numeric_dtype(predictions) and not pd.api.types.is_bool_dtype(predictions):
        return {"prediction_mean": float(predictions.mean())}
    counts = predictions.astype(str).value_counts().head(20)
    return {"predicted_classes": MetadataValue.json(counts.to_dict())}


def _live_metadata(verdict: "LiveVerdict") -> dict[str, Any]:
    """A live verdict as asset metadata; the metric is numeric so the UI plots it."""
    metadata: dict[str, Any] = {
        "champion_version": verdict.version,
        "champion_labelled_rows": verdict.rows,
        "live_verdict": "degraded" if verdict.degraded else "ok",
        "live_summary": verdict.reason,
    }
    if verdict.live is not None:
        metadata[f"live_{verdict.metric}"] = verdict.live
    if verdict.holdout is not None:
        metadata[f"holdout_{verdict.metric}"] = verdict.holdout
    return metadata
