"""The data steps: `raw` (load_raw, RawSchema), `features` (build_features, FeatureSchema),
`split` (the holdout). The schema checks are blocking: bad rows stop everything downstream.
"""

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
    Failure,
    MetadataValue,
    Output,
    asset,
)

from modelfactory.errors import ProjectError
from modelfactory.ml import datasets
from modelfactory.orchestration.assets.shared import Graph
from modelfactory.orchestration.metadata import frame_metadata
from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import rows_of
from modelfactory.stores.home import local_home, warehouse_kind

__all__ = ["data_assets"]


def data_assets(graph: Graph) -> list[AssetsDefinition]:
    return [_raw(graph), _features(graph), _split(graph)]


def _raw(graph: Graph) -> AssetsDefinition:
    project, spec, key = graph.project, graph.spec, graph.key

    @asset(
        key=key["raw"],
        io_manager_key="warehouse",
        metadata=graph.stored,
        kinds={"python", warehouse_kind()},
        description=f"Raw rows from {project.shown('features.py')}: load_raw. {spec.description}",
        check_specs=[_schema_check_spec(key["raw"], "raw_schema", "RawSchema")],
        **graph.common,
    )
    def raw(context: AssetExecutionContext) -> Iterator[Any]:
        frame = project.function("features", "load_raw")(local_home().data(spec.name))
        if spec.segments:
            frame = _segment_rows(project, frame, context.partition_key, "load_raw")
        yield from _validated(project, frame, "load_raw", "RawSchema", "raw_schema")

    return raw


def _features(graph: Graph) -> AssetsDefinition:
    project, spec, key = graph.project, graph.spec, graph.key

    @asset(
        key=key["features"],
        ins={"raw": AssetIn(key["raw"])},
        io_manager_key="warehouse",
        metadata=graph.stored,
        kinds={"python", warehouse_kind()},
        description=f"Inputs and target from {project.shown('features.py')}: build_features.",
        check_specs=[_schema_check_spec(key["features"], "features_schema", "FeatureSchema")],
        freshness_policy=graph.fresh.get("features"),
        **graph.common,
    )
    def features(context: AssetExecutionContext, raw: Any) -> Iterator[Any]:
        frame = project.function("features", "build_features")(raw)
        if spec.segments:  # the endpoint routes requests by this column: it must stay
            frame = _segment_rows(project, frame, context.partition_key, "build_features")
        yield from _validated(project, frame, "build_features", "FeatureSchema", "features_schema")

    return features


def _split(graph: Graph) -> AssetsDefinition:
    spec, key = graph.spec, graph.key

    @asset(
        key=key["split"],
        ins={"features": AssetIn(key["features"])},
        io_manager_key="warehouse",
        metadata=graph.stored,
        kinds={"python", warehouse_kind()},
        description=(
            f"Features marked train/test ({spec.split.test_size:.0%} holdout"
            + (f", latest by {spec.split.by}" if spec.split.by else ", seeded random")
            + "). Candidate and champion are scored on the same holdout."
        ),
        **graph.common,
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

    return split


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
