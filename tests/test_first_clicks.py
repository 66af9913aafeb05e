"""The first clicks in the UI: "Materialize all" on each example's group, on a freshly trained
state with no traffic yet, ends green and announces nothing (issue 17, item 4).

What the button launches is read off Dagster's UI (LaunchAssetExecutionButton): every asset
of the group selected. breast_cancer's assets are unpartitioned and share the hidden asset
job, so it is one run of all of them, with no run config. demand_forecast's assets are
partitioned two ways (segments; days x segments for predictions), so it is an asset backfill
anchored on the root, `raw`, over the partitions the dialog selects (all segments): the
backfill runs each segment's assets of one partitions definition together (one run per
segment), then predictions' days of each segment under its single-run backfill policy (one
run per segment over a partition range). The tests execute those runs in-process on a real
instance, MLflow and DuckDB, as the daemon would launch them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dagster import AssetKey, BackfillPolicy, DagsterInstance

from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.runs import seed_data, train
from modelfactory.project.loader import load_project
from modelfactory.stores.home import local_home
from modelfactory.stores.notify import read_alerts

pytestmark = pytest.mark.slow
# Dagster's run tags for a run over a partition range (as a single-run backfill sets them).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def trained(copy_example, example: str, edit=None):
    """The example as `make dev` leaves it: seeded, trained, its first champion approved."""
    project = load_project(copy_example(example, edit=edit))
    seed_data(project)
    for segment in project.spec.segments.values if project.spec.segments else [None]:
        outcome = train(project, approve=True, instance=DagsterInstance.get(), segment=segment)
        assert outcome.promoted, outcome.errors
    return project


def group_keys(defs, group: str) -> list[AssetKey]:
    return [s.key for s in defs.resolve_all_asset_specs() if s.group_name == group]


def assert_green_and_quiet(results) -> None:
    for result in results:
        failures = [e.message for e in result.get_step_failure_events()]
        assert result.success, failures
    alerts = read_alerts(local_home().alerts_log) if local_home().alerts_log.exists() else []
    assert [a for a in alerts if a.event == "run_failed"] == []


def metadata(instance: DagsterInstance, key: AssetKey) -> dict:
    event = instance.get_latest_materialization_event(key)
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_materialize_all_on_breast_cancer_is_one_green_run(copy_example) -> None:
    project = trained(copy_example, "breast_cancer")
    defs = build_definitions(project)
    keys = group_keys(defs, "breast_cancer")
    assert len(keys) == 11  # every asset of the group: nothing hidden
    job = defs.resolve_implicit_global_asset_job_def()
    instance = DagsterInstance.get()

    result = job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False)

    assert_green_and_quiet([result])
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized >= set(keys)
    drift = metadata(instance, AssetKey(["breast_cancer", "drift_report"]))
    assert drift["verdict"] == "nothing to judge yet"
    assert "no captured requests in breast_cancer_inference_log yet" in drift["summary"]
    assert "drifted" not in drift and "drift_share" not in drift  # no verdict to read
    champion = metadata(instance, AssetKey(["breast_cancer", "champion"]))
    assert champion["champion_version"] == "1" and champion["promoted"] is False
    # The same data again: the gate fails (no improvement), so v1 is kept, announcing nothing.
    assert champion["decision"].startswith("kept v1: candidate v2 failed")
    live = metadata(instance, AssetKey(["breast_cancer", "live_metrics"]))
    assert live["labelled_rows"] == 0
    card = metadata(instance, AssetKey(["breast_cancer", "model_card"]))["card"]
    assert "- **Drift:** not known yet (breast_cancer: no captured requests" in card


def test_materialize_all_on_demand_forecast_backfills_green(copy_example) -> None:
    two = lambda spec: spec["segments"].update(values=["uk", "de"])  # noqa: E731 (as three, faster)
    project = trained(copy_example, "demand_forecast", edit=two)
    defs = build_definitions(project)
    keys = group_keys(defs, "demand_forecast")
    predictions = AssetKey(["demand_forecast", "predictions"])
    by_segment = [k for k in keys if k != predictions]
    segments = list(project.spec.segments.values)
    # The backfill's shape: one partitions definition (segments) for all but predictions,
    # whose days x segments are backfilled in one run per segment.
    definitions = {k: defs.resolve_assets_def(k) for k in keys}
    assert {tuple(definitions[k].partitions_def.get_partition_keys()) for k in by_segment} == {
        tuple(segments)
    }
    policy = definitions[predictions].backfill_policy
    assert policy == BackfillPolicy.single_run()
    days = definitions[predictions].partitions_def.get_partitions_def_for_dimension("date")
    first, last = days.get_first_partition_key(), days.get_last_partition_key()
    assert last == f"{datetime.now(UTC):%Y-%m-%d}"  # today's included
    job = defs.resolve_implicit_global_asset_job_def()
    instance = DagsterInstance.get()

    results = [
        job.execute_in_process(
            instance=instance, asset_selection=by_segment, partition_key=s, raise_on_error=False
        )
        for s in segments
    ]
    results += [
        job.execute_in_process(
            instance=instance,
            asset_selection=[predictions],
            tags={RANGE_START: f"{first}|{s}", RANGE_END: f"{last}|{s}"},
            raise_on_error=False,
        )
        for s in segments
    ]

    assert_green_and_quiet(results)
    scored = instance.get_materialized_partitions(predictions)
    assert len(scored) == len(days.get_partition_keys()) * len(segments)
    for segment in segments:
        drift = instance.fetch_materializations(
            _records_of(AssetKey(["demand_forecast", "drift_report"]), segment), limit=1
        ).records[0]
        said = {k: v.value for k, v in drift.asset_materialization.metadata.items()}
        assert said["verdict"] == "nothing to judge yet", said
        assert f"demand_forecast.{segment}: no captured requests" in said["summary"]
    batch = results[-1].asset_materializations_for_node("demand_forecast__predictions")[0]
    said = {k: v.value for k, v in batch.metadata.items()}
    assert said["champion_version"] == "1" and said["days"] == f"{first} .. {last}"
    assert said["dagster/row_count"] > 0


def _records_of(key: AssetKey, partition: str):
    from dagster import AssetRecordsFilter

    return AssetRecordsFilter(asset_key=key, asset_partitions=[partition])


def test_predictions_before_any_champion_store_nothing_and_say_so(copy_example) -> None:
    project = load_project(copy_example("breast_cancer"))
    seed_data(project)
    defs = build_definitions(project)
    steps = [AssetKey(["breast_cancer", step]) for step in ("raw", "features", "predictions")]
    job = defs.resolve_implicit_global_asset_job_def()

    result = job.execute_in_process(
        instance=DagsterInstance.get(), asset_selection=steps, raise_on_error=False
    )

    assert_green_and_quiet([result])
    said = metadata(DagsterInstance.get(), steps[-1])
    assert said["dagster/row_count"] == 0 and said["champion_version"] == "none"
    assert said["note"] == "no champion yet: breast_cancer"
