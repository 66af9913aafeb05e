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

import warnings
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    BackfillPolicy,
    BetaWarning,
    MetadataValue,
    MultiToSingleDimensionPartitionMapping,
    Output,
    asset,
)

from modelfactory.ml import datasets, live, monitoring
from modelfactory.ml.evaluation import METRICS, predict_with_scores
from modelfactory.ml.live import champion_holdout, classified, find_labels
from modelfactory.orchestration.assets.shared import Graph
from modelfactory.orchestration.batch import (
    SEGMENT,
    predictions_partitions,
    predictions_storage,
    rows_between,
    scored_partitions,
)
from modelfactory.orchestration.metadata import frame_metadata
from modelfactory.orchestration.resources import ArtifactStore
from modelfactory.orchestration.sensors.names import CHAMPION_TAG, DRIFT_WINDOW_TAG
from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import cli_args, segment_model, unit_of
from modelfactory.stores import snapshots
from modelfactory.stores.home import inference_store, label_folder, warehouse_kind
from modelfactory.stores.inference_log import inference_log_table
from modelfactory.stores.inference_reader import read_labelled, read_recent, read_window
from modelfactory.stores.registry import ModelRegistry, VersionInfo

if TYPE_CHECKING:
    import pandas as pd

    from modelfactory.ml.live import LiveVerdict

__all__ = ["production_assets"]


def production_assets(graph: Graph) -> list[AssetsDefinition]:
    """The model's production watch: batch predictions, drift report, live metrics."""
    return [_predictions(graph), _drift_report(graph), _live_metrics(graph)]


def _drift_report(graph: Graph) -> AssetsDefinition:
    project, spec, key = graph.project, graph.spec, graph.key

    @asset(
        key=key["drift_report"],
        ins={"split": AssetIn(key["split"])},
        kinds={"evidently"},
        required_resource_keys={"model_registry", "artifact_store"},
        description=(
            f"An Evidently report (HTML) of the latest {spec.drift.window} captured requests "
            "(or the window the modelfactory_drift sensor judged) against the champion's training "
            f"inputs, judged as the sensor judges: {spec.drift.method} on the champion's "
            f"reference profile, a column drifted at {spec.drift.threshold:g}, the model when "
            f"more than {spec.drift.max_share:.0%} of the columns drifted. The drift share is "
            "metadata, so the UI plots it over time; once labels arrived, a second report of "
            f"the champion's {spec.task} quality on them vs on the holdout. Before any traffic "
            "(or any champion) it materializes a note saying so, and no verdict."
        ),
        **graph.common,
    )
    def drift_report(context: AssetExecutionContext, split: Any) -> Output:
        registry: ModelRegistry = context.resources.model_registry
        unit = unit_of(context)
        champion = _judged_champion(context, registry, unit)
        if champion is None:
            return _nothing_to_judge(
                f"{unit} has no champion yet, so no reference to compare live data with; "
                f"train one (`modelfactory train {cli_args(unit)}`)"
            )
        current, window = _report_window(context, unit, spec.drift.window)
        if current.empty:
            return _nothing_to_judge(window)
        trained_on, rows_from = _training_split(champion, split, unit)
        reference, _ = datasets.xy(trained_on, spec, "train")
        profile = registry.reference_profile(unit, champion.version)
        if profile is None:  # logged before references were kept: the training inputs then
            profile = monitoring.profile(reference)
        shared = [c for c in profile.columns if c in current.columns and c in reference.columns]
        if not shared:
            return _nothing_to_judge(
                f"{unit}: the captured requests hold none of the columns of v"
                f"{champion.version}'s reference ({', '.join(profile.columns[:10])})"
            )
        current = current[shared]
        result = monitoring.compare(profile, current, spec.drift)
        of = f"{context.partition_key}-" if spec.segments else ""  # whose report, by name
        report = _Report(context, spec.name, unit, of)
        location = report.drift(reference, current, result, spec.drift)
        quality = _labelled_quality(project, registry, trained_on, unit, champion)
        extra = report.quality(quality, spec.task, champion.version)
        return Output(
            {"path": location, **monitoring.as_dict(result)},
            metadata={
                **_drift_metadata(result, spec.drift, window, champion.version),
                "current_rows": len(current),
                "reference_rows": len(reference),
                "reference_rows_from": rows_from,
                "report": _report_link(location),
                **extra,
                "summary": result.describe(),
            },
        )

    return drift_report


def _predictions(graph: Graph) -> AssetsDefinition:
    spec, key = graph.spec, graph.key
    name = spec.name
    with warnings.catch_warnings():  # backfill_policy is beta in Dagster 1.13; it fits
        warnings.simplefilter("ignore", BetaWarning)

        @asset(
            key=key["predictions"],
            ins={"features": AssetIn(key["features"], partition_mapping=_features_of_run(spec))},
            io_manager_key="warehouse",
            metadata=predictions_storage(spec),
            kinds={"scikit-learn", warehouse_kind()},
            required_resource_keys={"model_registry"},
            description=_predictions_description(spec),
            freshness_policy=graph.fresh.get("predictions"),
            # One run per backfill (per segment) rather than one per day: Materialize all on a
            # year of days is a handful of runs, each replacing its days' rows at once.
            backfill_policy=BackfillPolicy.single_run() if spec.predictions else None,
            **{**graph.common, "partitions_def": predictions_partitions(spec)},
        )
        def predictions(context: AssetExecutionContext, features: Any) -> Output:
            registry: ModelRegistry = context.resources.model_registry
            days, segments = scored_partitions(context, spec)
            if days is not None:
                features = rows_between(features, spec.split.by, *days)  # type: ignore[arg-type]
            parts, versions = [], {}
            for segment in segments:
                rows = features
                if segment is not None:
                    rows = features[features[spec.segments.by].astype(str) == segment]
                model = segment_model(name, segment)
                champion = registry.champion(model)
                if champion is None:
                    context.log.info(f"{model}: no champion to score with yet; no rows stored")
                    versions[model] = "none"
                    continue
                versions[model] = champion.version
                parts.append(_scored(registry, model, champion.version, rows, spec))
            scored = _concat(parts, features, spec)
            waiting = [model for model, version in versions.items() if version == "none"]
            return Output(
                scored,
                metadata={
                    # Repeated on each partition of a range: no preview there.
                    **frame_metadata(scored, preview=days is None or days[0] == days[1]),
                    "champion_version": _versions(versions),
                    **_prediction_summary(scored["prediction"]),
                    **_days_metadata(days),
                    **({"note": f"no champion yet: {', '.join(waiting)}"} if waiting else {}),
                },
            )

    return predictions


def _predictions_description(spec: Any) -> str:
    return (
        (
            f"Batch scores by day (from {spec.predictions.daily_from}): the features rows "
            f"of each day (by {spec.split.by}), scored by the champion of the moment, with "
            "the version that scored them; a backfill scores its days in one run"
            if spec.predictions
            else "Batch scores: every row of the latest features scored by the champion, "
            "with the version that scored it"
        )
        + (f"; refreshed on `{spec.schedule.predict}` (UTC)." if spec.schedule.predict else ".")
        + " Before any champion it stores no rows and says so."
    )


def _live_metrics(graph: Graph) -> AssetsDefinition:
    spec, key = graph.spec, graph.key
    name = spec.name
    metric = METRICS[spec.metric.name]

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
            f"modelfactory_live_metric sensor retrains when the champion's {metric.name} "
            f"falls more than {spec.live_metric.tolerance:.0%} behind its holdout value."
        ),
        **graph.common,
    )
    def live_metrics(context: AssetExecutionContext) -> Output:
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

    return live_metrics


def _drift_metadata(result: Any, drift: Any, window: str, champion: str) -> dict[str, Any]:
    """The drift verdict as metadata; the share is numeric so the UI plots it over time."""
    return {
        "verdict": "drifted" if result.drifted else "no drift",
        "drift_share": result.share,
        "drifted": result.drifted,
        "drifted_columns": ", ".join(result.drifted_columns) or "none",
        "method": drift.method,
        "threshold": drift.threshold,
        "max_share": drift.max_share,
        "window": window,
        "champion_version": champion,
    }


class _Report:
    """The HTML reports of one drift_report run: named by segment (`of`) and time, written
    locally and published to the artifact store."""

    def __init__(self, context: AssetExecutionContext, model: str, unit: str, of: str) -> None:
        self.context, self.model, self.unit, self.of = context, model, unit, of
        self.stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        self.store: ArtifactStore = context.resources.artifact_store

    def drift(self, reference: Any, current: Any, result: Any, drift: Any) -> str:
        """The Evidently drift report, published (with its JSON); its location."""
        path = self.store.local_path(self.model, f"drift-{self.of}{self.stamp}.html")
        shown = monitoring.evidently_report(reference, current, path, result, drift)
        if (shown.drifted_columns, shown.drifted) != (result.drifted_columns, result.drifted):
            self.context.log.warning(  # cannot happen by construction; said if it ever does
                f"{self.unit}: the Evidently report flags {shown.drifted_columns} "
                f"(drifted: {shown.drifted}), the platform {result.drifted_columns}"
            )
        location = self.store.publish(path, self.model)
        self.store.publish(path.with_suffix(".json"), self.model)
        return location

    def quality(
        self,
        quality: "tuple[pd.DataFrame, pd.DataFrame, monitoring.Outcomes] | None",
        task: str,
        version: str,
    ) -> dict[str, Any]:
        """The champion on its holdout vs on labelled live rows, as a second report (once
        labels arrived); its link, or why Evidently could not build it, as metadata."""
        extra: dict[str, Any] = {"labelled_rows": 0}
        if quality is None:
            return extra
        holdout, labelled, outcomes = quality
        extra["labelled_rows"] = len(labelled)
        report = self.store.local_path(self.model, f"quality-{self.of}{self.stamp}.html")
        try:
            monitoring.evidently_quality_report(holdout, labelled, report, outcomes)
        except Exception as exc:  # Evidently's own limits: the drift verdict still stands
            note = (
                f"{self.unit}: Evidently could not build the {task} quality report of "
                f"v{version} on {len(labelled)} labelled rows "
                f"({type(exc).__name__}: {exc}); the drift report stands without it"
            )
            self.context.log.warning(note)
            extra["quality_report_error"] = note
        else:
            extra["quality_report"] = _report_link(self.store.publish(report, self.model))
            if outcomes.classes:
                extra["quality_classes"] = ", ".join(map(str, outcomes.classes))
        return extra


def _nothing_to_judge(reason: str) -> Output:
    """A drift report with nothing to compare yet (no traffic, no champion): materialized, so
    Materialize all stays green and the lineage whole, with the reason and no verdict (no
    `drifted` or `drift_share` for the model card or the UI's plot to read as one)."""
    return Output(
        {"path": None, "reason": reason},
        metadata={"verdict": "nothing to judge yet", "summary": reason},
    )


def _judged_champion(
    context: AssetExecutionContext, registry: ModelRegistry, unit: str
) -> VersionInfo | None:
    """The champion the drift sensor judged (named by the run's tag), so a retrain promoted
    meanwhile does not change what the report compares with; else the champion now."""
    judged = context.run.tags.get(CHAMPION_TAG)
    if judged:
        found = registry.version(unit, judged)
        if found is not None:
            return found
        context.log.warning(
            f"{unit}: v{judged}, which the sensor judged, is gone; reporting on the champion now"
        )
    return registry.champion(unit)


def _training_split(
    champion: VersionInfo, latest: "pd.DataFrame", unit: str
) -> "tuple[pd.DataFrame, str]":
    """The split `champion` was trained and evaluated on (its snapshot), so the report's
    plots and holdout are the data its reference profile summarises; the latest split, and
    a note saying so, for a version that predates snapshots or whose snapshot is gone."""

    tags = champion.tags
    if "mf.snapshot" not in tags or "mf.data_hash" not in tags:
        return latest, f"the latest split (v{champion.version} kept no training snapshot)"
    try:
        kept = snapshots.load(
            tags["mf.snapshot"], tags["mf.data_hash"], f"{unit} v{champion.version}"
        )
    except snapshots.SnapshotError as exc:
        return latest, f"the latest split ({exc})"
    return kept, f"v{champion.version}'s training snapshot {tags['mf.snapshot']}"


def _report_window(
    context: AssetExecutionContext, unit: str, size: int
) -> "tuple[pd.DataFrame, str]":
    """The captured inputs to report on, and which they are: the window the drift sensor
    judged (named by the run's tag), else the latest `size` answered requests. Empty, with
    the reason, before any traffic."""
    store = inference_store(unit)
    after = context.run.tags.get(DRIFT_WINDOW_TAG)
    if after is not None:  # "" for the first window of all
        since = datetime.fromisoformat(after) if after else None
        current, first, last = read_window(store, unit, after=since, limit=size)
        window = f"{first.isoformat()} .. {last.isoformat()}" if first and last else ""
    else:
        current = read_recent(store, unit, size)
        window = f"the latest {len(current)} answered requests"
    if current.empty:
        return current, (
            f"{unit}: no captured requests in {inference_log_table(unit)} yet; the report "
            "compares live traffic with the training data (serve with `modelfactory serve`)"
        )
    return current, window


def _scored(
    registry: ModelRegistry, model: str, version: str, rows: "pd.DataFrame", spec: Any
) -> "pd.DataFrame":
    """`rows` (features) scored by `model`'s version, with the version; the target dropped."""
    scored = rows.drop(columns=[spec.target], errors="ignore").assign(
        prediction=float("nan"), model_version=version
    )
    if len(rows):  # a day without rows stores none, and says so
        X = datasets.inputs(rows, spec)
        predicted = predict_with_scores(registry.load(model, version), X)
        scored = scored.assign(prediction=predicted.labels)
        if predicted.score is not None:
            scored = scored.assign(score=predicted.score)
    return scored.reset_index(drop=True)


def _concat(parts: "list[pd.DataFrame]", features: "pd.DataFrame", spec: Any) -> "pd.DataFrame":
    """The scored parts as one frame; none scored (no champion yet) is an empty frame of
    the same columns."""
    import pandas as pd  # heavy: definitions load without pandas

    if parts:
        return pd.concat(parts, ignore_index=True)
    empty = features.drop(columns=[spec.target], errors="ignore").iloc[0:0]
    return empty.assign(prediction=pd.Series(dtype=float), model_version=pd.Series(dtype=str))


def _versions(versions: dict[str, str]) -> str:
    """Which version scored: `1`, or `demand_forecast.de=1, demand_forecast.uk=2` for a
    run over several segments; `none` before any champion."""
    if len(set(versions.values())) <= 1:
        return next(iter(versions.values()), "none")
    return ", ".join(f"{model}={version}" for model, version in versions.items())


def _days_metadata(days: "tuple[Any, Any] | None") -> dict[str, str]:
    if days is None:
        return {}
    first, last = days
    return {"day": first.isoformat()} if first == last else {"days": f"{first} .. {last}"}


def _features_of_run(spec: Any) -> Any:
    """A segmented model's daily predictions read their segment's features; otherwise the
    default mapping holds (the same partition, or all of unpartitioned features)."""
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
    project: ModelProject,
    registry: ModelRegistry,
    trained_on: "pd.DataFrame",
    unit: str,
    champion: VersionInfo,
) -> "tuple[pd.DataFrame, pd.DataFrame, monitoring.Outcomes] | None":
    """The champion's holdout (of `trained_on`, its split) and its labelled live rows, each
    with target and prediction (and a classifier's probabilities), for the report's quality
    section; None until labels for the champion arrived. `unit` is the model, or the
    segment (`<model>.<segment>`)."""
    import numpy as np  # heavy, as pandas
    import pandas as pd  # heavy: definitions load without pandas

    spec = project.spec
    labels = find_labels(label_folder(spec.name))
    if not labels.files:
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
    X, y = datasets.xy(trained_on, spec, "test")
    predicted = predict_with_scores(registry.load(unit, champion.version), X)
    target, prediction = spec.target, f"predicted_{spec.target}"
    reference = pd.DataFrame({target: y.to_numpy(), prediction: predicted.labels})
    if spec.task == "regression":
        current = pd.DataFrame(
            {target: mine["label"].astype(float), prediction: mine["prediction"]}
        )
        return reference, current, monitoring.Outcomes(spec.task, target, prediction)
    # The label files (and a warehouse's text columns) may hold "false" or "1.0": compared
    # as the model's own label type, as the live metrics compare them.
    truth, answered, live_classes, live_scores = classified(mine)
    current = pd.DataFrame({target: truth, prediction: answered})
    classes = tuple(predicted.classes or ())
    outcomes = monitoring.Outcomes(spec.task, target, prediction, classes=classes)
    live_proba = (  # class -> the live rows' probability of it, where every row answered them
        dict(zip(live_classes, np.asarray(live_scores, dtype=float).T, strict=True))
        if live_classes is not None
        else {}
    )
    if len(classes) > 2:  # Evidently reads these probabilities from columns named as the
        if live_proba and all(isinstance(c, str) and c in live_proba for c in classes):
            for index, name in enumerate(classes):  # classes, which number classes cannot be
                reference[name], current[name] = predicted.proba[:, index], live_proba[name]
            outcomes = replace(outcomes, probabilities=classes)
        return reference, current, outcomes
    positive = live_proba.get(classes[-1]) if classes and live_proba else live_scores
    if predicted.score is not None and positive is not None:
        score = f"score_{spec.target}"
        reference[score], current[score] = predicted.score, np.asarray(positive, dtype=float)
        outcomes = replace(outcomes, score=score)
    return reference, current, outcomes


def _prediction_summary(predictions: Any) -> dict[str, Any]:
    """The mean of numeric predictions, or how often each class was predicted (a classifier's
    labels may be strings)."""
    import pandas as pd  # heavy: definitions load without pandas

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
