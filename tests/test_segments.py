"""Per-segment models: each segment trains on its own rows and keeps or moves its own champion.

The example demand_forecast, copied with `segments: {by: marketplace}`, trains on a real
Dagster instance and MLflow registry; nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance, build_schedule_context, build_sensor_context

from conftest import edit_spec, wait_for
from modelfactory.cli import main
from modelfactory.errors import SpecError
from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.resources import project_resources
from modelfactory.orchestration.runs import seed_data, train
from modelfactory.orchestration.sensors import (
    CANARY_SENSOR,
    DRIFT_SENSOR,
    NEW_SEGMENTS_SENSOR,
    unit_cursor,
)
from modelfactory.project.loader import load_project
from modelfactory.project.spec import load_spec
from modelfactory.stores.home import local_home, model_registry

MODEL = "demand_forecast"
SEGMENTS = ["uk", "de", "us"]


def segmented(copy_example: Callable[..., Path], values: list[str] | str = SEGMENTS) -> Path:
    def edit(spec: dict) -> None:
        spec["segments"] = {"by": "marketplace", "values": values}
        spec["params"] = {"alpha": 1000.0}  # room to get better and worse later
        spec["promotion"].pop("slices")  # where a shrunk model strays on promo days

    return copy_example(MODEL, edit=edit)


def set_alpha(root: Path, alpha: float) -> None:
    edit_spec(root, lambda spec: spec["params"].update(alpha=alpha))


def champions() -> dict[str, str | None]:
    registry = model_registry()
    found = {s: registry.champion(f"{MODEL}.{s}") for s in SEGMENTS}
    return {s: (v.version if v else None) for s, v in found.items()}


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ({"by": "marketplace", "values": ["u k"]}, "each segment is 1-40 lower-case"),
        ({"by": "marketplace", "values": ["us-east"]}, "each segment is 1-40 lower-case"),
        ({"by": "marketplace", "values": ["uk", "uk"]}, "each segment must be listed once"),
        ({"by": "marketplace", "values": "all"}, "must be a list of segments or 'discover'"),
        ({"by": "units_sold", "values": ["a"]}, "segments.by must be an input column"),
        ({"values": ["uk"]}, "segments.by is required"),
    ],
)
def test_a_bad_segments_section_names_the_field(copy_example, segments, message) -> None:
    root = copy_example(MODEL, edit=lambda spec: spec.update(segments=segments))
    with pytest.raises(SpecError, match=message) as error:
        load_spec(root / "model.yaml")
    assert "model.yaml" in str(error.value)


def test_each_segment_trains_on_its_rows_and_keeps_or_moves_its_own_champion(
    copy_example,
) -> None:
    root = segmented(copy_example)
    runner = CliRunner()

    first = runner.invoke(main, ["train", MODEL])
    assert first.exit_code == 0, first.output
    assert "3 segment(s) by marketplace" in first.output
    assert f"{MODEL}[us]: training (3/3)" in first.output
    assert champions() == {"uk": "1", "de": "1", "us": "1"}  # versions count per segment

    # Each segment's features hold its rows only, in one warehouse table.
    warehouse = local_home().warehouse(MODEL)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        counts = dict(
            con.execute(f"SELECT marketplace, count(*) FROM {MODEL}.features GROUP BY 1").fetchall()
        )
    assert set(counts) == set(SEGMENTS) and len(set(counts.values())) == 1

    set_alpha(root, 3000.0)  # worse: uk's candidate fails the gate, its champion stays
    worse = runner.invoke(main, ["train", MODEL, "--segment", "uk"])
    assert worse.exit_code == 0, worse.output
    assert f"{MODEL}[uk]: champion unchanged; champion v1" in worse.output
    set_alpha(root, 1.0)  # better: de's candidate passes and becomes its champion
    outcome = train(load_project(root), instance=DagsterInstance.get(), segment="de")
    assert outcome.success and outcome.promoted, outcome.decision
    assert champions() == {"uk": "1", "de": "2", "us": "1"}
    assert model_registry().latest_version(f"{MODEL}.uk").tags["mf.verdict"] == "failed"
    status = runner.invoke(main, ["status"])
    assert status.exit_code == 0, status.output
    assert f"{MODEL}[de]: champion v2" in status.output
    assert f"{MODEL}[uk]: champion v1" in status.output
    assert "last candidate v2: failed" in status.output  # uk's

    # The UI's partition status: every segment materialized, champions from their runs.
    instance = DagsterInstance.get()
    champion_key = AssetKey([MODEL, "champion"])
    assert instance.get_materialized_partitions(champion_key) == set(SEGMENTS)


def test_an_unknown_segment_is_refused_naming_the_known_ones(copy_example) -> None:
    segmented(copy_example)
    result = CliRunner().invoke(main, ["train", MODEL, "--segment", "fr"])
    assert result.exit_code != 0
    assert "demand_forecast has no segment 'fr'" in result.output
    assert "uk, de, us" in result.output
    assert "Traceback" not in result.output


def test_each_schedule_tick_runs_every_segment_once(copy_example) -> None:
    defs = build_definitions(load_project(segmented(copy_example)))
    schedule = defs.resolve_schedule_def(f"{MODEL}_retrain_schedule")
    tick = datetime(2026, 5, 4, 3, 0, tzinfo=UTC)
    repository = defs.get_repository_def()
    with build_schedule_context(
        scheduled_execution_time=tick, repository_def=repository
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == SEGMENTS
    assert len({r.run_key for r in requests}) == 3  # the same tick twice would run nothing new
    assert all(r.tags["modelfactory/model"] == MODEL for r in requests)
    job = defs.resolve_job_def(f"{MODEL}_train")
    assert job.partitions_def.get_partition_keys() == SEGMENTS


def test_discovered_segments_come_from_the_data_and_a_new_one_trains_by_itself(
    copy_example,
) -> None:
    root = segmented(copy_example, values="discover")
    project = load_project(root)
    seed_data(project)
    sales = local_home().data(MODEL) / "sales.csv"
    everything = pd.read_csv(sales)
    everything[everything["marketplace"] != "us"].to_csv(sales, index=False)

    result = CliRunner().invoke(main, ["train", MODEL])
    assert result.exit_code == 0, result.output
    instance = DagsterInstance.get()
    assert sorted(instance.get_dynamic_partitions(f"{MODEL}_segments")) == ["de", "uk"]

    sensor = build_definitions(project).resolve_sensor_def(NEW_SEGMENTS_SENSOR)
    resources = project_resources(MODEL)  # the sensor alerts when a model's data fails it
    with build_sensor_context(instance=instance, resources=resources) as context:
        assert "no new values" in str(sensor(context).skip_message)
    everything[everything["marketplace"] == "us"].to_csv(sales.with_name("us.csv"), index=False)
    with build_sensor_context(instance=instance, resources=resources) as context:
        result = sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["us"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["us"]


def test_the_endpoint_answers_each_segment_with_its_own_champion(copy_example) -> None:
    import httpx

    from conftest import LiveServer
    from modelfactory.orchestration.resources import project_resources
    from modelfactory.stores.home import inference_store, rollout_store
    from modelfactory.stores.inference_reader import read_inference_log, version_stats

    root = segmented(copy_example, values=["uk", "de"])  # us is not one of this model's
    edit_spec(root, lambda spec: spec["serving"]["canary"].update(steps=[50, 100], min_requests=5))
    instance = DagsterInstance.get()
    seed_data(load_project(root))
    for segment in ("uk", "de"):
        assert train(load_project(root), instance=instance, segment=segment).promoted
    set_alpha(root, 1.0)
    assert train(load_project(root), instance=instance, segment="de").promoted  # de: v2
    assert rollout_store().active(f"{MODEL}.de").describe() == "v1 -> v2, step 1/2: 50% of requests"
    assert rollout_store().active(f"{MODEL}.uk") is None

    app = endpoint_app(load_project(root))
    row = {"price": 9.5, "promo": 1, "temperature": 20.0, "is_weekend": 0}
    rows = [{**row, "marketplace": m} for m in ("uk", "de", "uk", "de")]
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(30):  # de's canary answers about half of de's rows
            assert client.post(f"/models/{MODEL}/predict", json={"rows": rows}).status_code == 200
        since = datetime.now(UTC) - timedelta(hours=1)
        wait_for(
            lambda: any(
                s.role == "canary" and s.requests >= 5
                for s in version_stats(inference_store(f"{MODEL}.de"), f"{MODEL}.de", since)
            ),
            "de's canary traffic in its inference log",
        )
        # The canary sensor judges each segment's rollout on that segment's traffic.
        sensor = build_definitions(load_project(root)).resolve_sensor_def(CANARY_SENSOR)
        context = build_sensor_context(instance=instance, resources=project_resources(MODEL))
        said = sensor(context).skip_message
        assert f"{MODEL}.uk" not in said  # only rollouts in progress are judged
        assert f"{MODEL}.de: v1 -> v2, completed" in said, said
        wait_for(
            lambda: client.get("/models").json()[f"{MODEL}.de"]["canary_version"] is None,
            "de's route to settle",
        )

        answer = client.post(f"/models/{MODEL}/predict", json={"rows": rows})
        assert answer.status_code == 200, answer.text
        served = [(p["segment"], p["version"]) for p in answer.json()["predictions"]]
        assert served == [("uk", "1"), ("de", "2"), ("uk", "1"), ("de", "2")]
        prices = [p["prediction"] for p in answer.json()["predictions"]]
        assert prices[0] == prices[2] and prices[1] == prices[3] and prices[0] != prices[1]

        refused = client.post(
            f"/models/{MODEL}/predict", json={"rows": [rows[0], {**row, "marketplace": "us"}]}
        )
        assert refused.status_code == 422
        assert refused.json()["detail"] == (
            "rows[1].marketplace: demand_forecast has no segment 'us'; its segments are uk, de"
        )
        assert set(client.get("/models").json()) == {f"{MODEL}.uk", f"{MODEL}.de"}

    # Each segment's rows went to its own log, at their places in the request (labels join
    # by request_id and row_index as the client knows them).
    for segment, places in (("uk", [0, 2]), ("de", [1, 3])):
        unit = f"{MODEL}.{segment}"
        log = read_inference_log(inference_store(unit), unit)
        assert set(log["row_index"]) == set(places) and len(log) == 31 * len(places)
        assert set(log["model_version"]) == ({"1", "2"} if segment == "de" else {"1"})

    # A rollback moves one segment's champion only, and names the segment it needs.
    runner = CliRunner()
    ambiguous = runner.invoke(main, ["rollback", MODEL])
    assert ambiguous.exit_code != 0 and "name one with --segment" in ambiguous.output
    back = runner.invoke(main, ["rollback", MODEL, "--segment", "de"])
    assert back.exit_code == 0, back.output
    registry = model_registry()
    assert registry.champion(f"{MODEL}.de").version == "1"
    assert registry.champion(f"{MODEL}.uk").version == "1"


def test_drift_in_one_segment_retrains_only_that_segment(copy_example) -> None:
    import httpx

    from conftest import LiveServer
    from modelfactory.cli.demo import simulated_features
    from modelfactory.orchestration.resources import project_resources
    from modelfactory.stores.home import inference_store
    from modelfactory.stores.inference_reader import read_inference_log

    window = 200
    root = segmented(copy_example, values=["uk", "de"])
    edit_spec(root, lambda spec: spec["drift"].update(window=window))
    project = load_project(root)
    seed_data(project)
    instance = DagsterInstance.get()
    for segment in ("uk", "de"):
        assert train(project, instance=instance, segment=segment).promoted

    def inputs(marketplace: str, **knobs: float) -> list[dict]:
        features = simulated_features(project, n_days=20, **knobs)
        rows = features[features["marketplace"] == marketplace].head(window)
        return rows.drop(columns=["date", "units_sold"]).to_dict("records")

    calm_uk, drifted_de = inputs("uk", seed=7), inputs("de", seed=8, drift=0.5)
    app = endpoint_app(project)
    labels = []
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        for start in range(0, window, 50):
            rows = calm_uk[start : start + 50] + drifted_de[start : start + 50]
            answer = client.post(f"/models/{MODEL}/predict", json={"rows": rows})
            assert answer.status_code == 200, answer.text
            request_id = answer.json()["request_id"]
            labels += [(request_id, place, 40.0) for place in range(len(rows))]
    for segment in ("uk", "de"):  # the server flushed both logs as it stopped
        unit = f"{MODEL}.{segment}"
        assert len(read_inference_log(inference_store(unit), unit)) == window

    sensor = build_definitions(project).resolve_sensor_def(DRIFT_SENSOR)
    context = build_sensor_context(instance=instance, resources=project_resources(MODEL))
    requests = sensor(context)
    assert {(r.job_name, r.partition_key) for r in requests} == {
        (f"{MODEL}_train", "de"),
        (f"{MODEL}_drift_report", "de"),
    }
    assert all(unit_cursor(context.cursor, f"{MODEL}.{s}") for s in ("uk", "de"))  # judged
    again = build_sensor_context(
        instance=instance, resources=project_resources(MODEL), cursor=context.cursor
    )
    said = sensor(again).skip_message
    assert f"{MODEL}.uk: 0/{window} new rows" in said and f"{MODEL}.de: 0/{window}" in said

    # The report of de alone: its partition of the drift_report asset, from de's log.
    report = build_definitions(project).resolve_job_def(f"{MODEL}_drift_report")
    result = report.execute_in_process(instance=instance, partition_key="de")
    assert result.success
    (materialization,) = result.asset_materializations_for_node(f"{MODEL}__drift_report")
    assert materialization.partition == "de"
    assert materialization.metadata["drifted"].value is True
    assert materialization.metadata["current_rows"].value == window

    # Labels of both segments in one file: each segment's live metrics join its own rows.
    folder = local_home().labels(MODEL)
    folder.mkdir(parents=True)
    frame = pd.DataFrame(labels, columns=["request_id", "row_index", "units_sold"])
    frame.to_csv(folder / "day-1.csv", index=False)
    live = build_definitions(project).resolve_job_def(f"{MODEL}_live_metrics")
    result = live.execute_in_process(instance=instance, partition_key="uk")
    assert result.success
    (materialization,) = result.asset_materializations_for_node(f"{MODEL}__live_metrics")
    assert materialization.metadata["labelled_rows"].value == window  # uk's rows, not de's


def endpoint_app(project) -> object:
    """The real endpoint app for one project, refreshing and flushing quickly."""
    from modelfactory.serving import create_app
    from modelfactory.serving.app import ServingSettings
    from modelfactory.stores.home import rollout_store

    return create_app(
        [project],
        registry=model_registry(),
        rollouts=rollout_store(),
        home=local_home(),
        settings=ServingSettings(refresh_seconds=0.1, flush_seconds=0.2),
    )


def test_the_ui_shows_each_segment_s_status(copy_example, workdir: Path) -> None:
    """What the asset page shows, asked of Dagster's GraphQL API (the UI's own), on the
    scratch repository's fleet (model_projects/definitions.py) loaded as its code location."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    root = segmented(copy_example)
    project = load_project(root)
    seed_data(project)
    instance = DagsterInstance.get()
    for segment in ("uk", "de"):  # us is not trained yet
        assert train(project, instance=instance, segment=segment).success
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            python_file=str(workdir / "model_projects" / "definitions.py"),
            working_directory=str(workdir),
        ),
        location_name="model_projects",
    )
    query = """
    query {
      assetNodes {
        assetKey { path }
        partitionKeys
        partitionStats { numMaterialized numPartitions numFailed }
        assetPartitionStatuses {
          ... on DefaultPartitionStatuses { materializedPartitions unmaterializedPartitions }
        }
      }
    }
    """
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(location)) as workspace:
        result = execute_dagster_graphql(workspace.create_request_context(), query)
    assert result.errors is None, result.errors
    nodes = {"/".join(n["assetKey"]["path"]): n for n in result.data["assetNodes"]}
    for step in ("raw", "features", "split", "candidate", "evaluation", "champion", "endpoint"):
        node = nodes[f"{MODEL}/{step}"]
        assert node["partitionKeys"] == SEGMENTS
        assert node["partitionStats"] == {"numMaterialized": 2, "numPartitions": 3, "numFailed": 0}
        statuses = node["assetPartitionStatuses"]
        assert sorted(statuses["materializedPartitions"]) == ["de", "uk"]
        assert statuses["unmaterializedPartitions"] == ["us"]


def test_a_slice_by_the_segment_column_is_refused(copy_example) -> None:
    def edit(spec: dict) -> None:
        spec["promotion"]["slices"] = {"by": ["promo", "marketplace"], "max_gap": 0.25}

    root = copy_example(MODEL, edit=edit)
    with pytest.raises(SpecError, match=r"slices\.by names 'marketplace', which segments\.by"):
        load_spec(root / "model.yaml")
