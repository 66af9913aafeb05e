"""Per-segment models: each segment trains on its own rows and keeps or moves its own champion.

The example demand_forecast, copied with `segments: {by: marketplace}`, trains on a real
Dagster instance and MLflow registry; nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance, build_schedule_context, build_sensor_context

from conftest import edit_spec
from modelfactory.assets import build_definitions
from modelfactory.cli import main
from modelfactory.errors import SpecError
from modelfactory.project import load_project
from modelfactory.resources import local_home, model_registry
from modelfactory.runs import seed_data, train
from modelfactory.spec import load_spec

MODEL = "demand_forecast"
SEGMENTS = ["uk", "de", "us"]


def segmented(copy_example: Callable[..., Path], values: list[str] | str = SEGMENTS) -> Path:
    def edit(spec: dict) -> None:
        spec["segments"] = {"by": "marketplace", "values": values}
        spec["params"] = {"alpha": 1000.0}  # room to get better and worse later

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
        ({"by": "marketplace", "values": ["u k"]}, "each segment is 1-40 letters"),
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

    sensor = build_definitions(project).resolve_sensor_def(f"{MODEL}_new_segments")
    with build_sensor_context(instance=instance) as context:
        assert "no new values" in str(sensor(context).skip_message)
    everything[everything["marketplace"] == "us"].to_csv(sales.with_name("us.csv"), index=False)
    with build_sensor_context(instance=instance) as context:
        result = sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["us"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["us"]
