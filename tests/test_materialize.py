"""End to end on real parts: a real Dagster instance, MLflow on sqlite and DuckDB, in a temp home.

These are the promises of the foundation: both examples materialize fully; bad data stops
everything downstream and fails the run; the champion alias moves only through the gate;
manual policy waits for a person; rollback restores the previous champion.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance

from conftest import edit_spec
from modelfactory.cli import main
from modelfactory.errors import RegistryError
from modelfactory.ml.evaluation import METRICS
from modelfactory.orchestration.assets import STEPS  # the train graph, pinned by the graph snapshot
from modelfactory.orchestration.runs import seed_data, train
from modelfactory.project.loader import load_project
from modelfactory.stores.home import local_home, model_registry, rollout_store

pytestmark = pytest.mark.slow
CARD_SECTIONS = [  # the questions a card answers, in order
    "## Overview",
    "**Assumptions**",
    "**Limitations**",
    "## Model",
    "## Performance on the holdout",
    "## Training data",
    "## In production",
    "## Links",
]


def run(root: Path, approve: bool = False, segment: str | None = None):
    project = load_project(root)
    seed_data(project)
    return train(project, approve=approve, instance=DagsterInstance.get(), segment=segment)


def set_param(root: Path, **params) -> None:
    edit_spec(root, lambda spec: spec["params"].update(params))


@pytest.mark.parametrize(
    ("example", "segment", "approve"),
    [("demand_forecast", "uk", False), ("breast_cancer", None, True)],
)
def test_example_materializes_end_to_end(
    copy_example, example: str, segment: str | None, approve: bool
) -> None:
    outcome = run(copy_example(example), approve=approve, segment=segment)
    unit = f"{example}.{segment}" if segment else example  # its registered model

    assert outcome.success, outcome.errors
    assert outcome.promoted and outcome.champion == "1"
    assert outcome.failed_checks == {}
    gate_checks = 4 if example == "demand_forecast" else 3  # demand_forecast also replays
    assert outcome.checks_run == 2 + gate_checks  # two blocking schema checks + the gate's

    instance = DagsterInstance.get()
    for step in STEPS:
        event = instance.get_latest_materialization_event(AssetKey([example, step]))
        assert event is not None, f"{example}/{step} was not materialized"
        assert event.asset_materialization.partition == segment
    candidate = instance.get_latest_materialization_event(AssetKey([example, "candidate"]))
    metadata = candidate.asset_materialization.metadata
    assert metadata["model_version"].value == "1"
    assert metadata["mlflow_run"].value.startswith("http://localhost:5000/#/experiments/")
    reference = model_registry().reference_profile(unit, "1")  # for drift checks
    assert reference is not None and reference.rows == metadata["train_rows"].value
    raw = instance.get_latest_materialization_event(AssetKey([example, "raw"]))
    assert raw.asset_materialization.metadata["dagster/row_count"].value > 500
    assert "preview" in raw.asset_materialization.metadata

    registry = model_registry()
    champion = registry.champion(unit)
    assert champion is not None and champion.version == "1"
    assert registry.version_by_alias(unit, "challenger").version == "1"
    tags = champion.tags
    assert tags["mf.verdict"] == "passed"
    assert len(tags["mf.data_hash"]) == 16 and tags["mf.dagster_run_id"] == outcome.run_id
    metric = load_project(Path.cwd() / "model_projects" / example).spec.metric.name
    assert float(tags[f"mf.holdout.{metric}"]) > 0

    check_card(example, unit, champion, outcome.run_id)

    with duckdb.connect(str(local_home().warehouse(example)), read_only=True) as db:
        tables = {row[0] for row in db.execute(
            "select table_name from information_schema.tables where table_schema = ?", [example]
        ).fetchall()}  # fmt: skip
        rows = db.execute(f"select count(*) from {example}.split").fetchone()[0]
    assert tables == {"raw", "features", "split"}
    assert rows == raw.asset_materialization.metadata["dagster/row_count"].value


def check_card(example: str, unit: str, champion, run_id: str) -> None:
    """The card of the run's champion: every section, with that run's real values, shown on
    the asset and stored (Markdown and HTML) with the champion's MLflow run."""
    from mlflow import MlflowClient

    from modelfactory.project.spec import load_spec

    event = DagsterInstance.get().get_latest_materialization_event(
        AssetKey([example, "model_card"])
    )
    assert event.run_id == run_id
    card = event.asset_materialization.metadata["card"].value
    places = [card.index(section) for section in CARD_SECTIONS]
    assert places == sorted(places), card
    spec = load_spec(Path.cwd() / "model_projects" / example / "model.yaml")
    assert f"# Model card: {unit}" in card
    assert f"- **Intended use:** {spec.intended_use}" in card
    assert all(f"- {line}" in card for line in spec.assumptions + spec.limitations)
    tags = champion.tags
    metric = spec.metric.name
    assert f"| {metric} | {float(tags[f'mf.holdout.{metric}']):.4g} | " in card
    assert f"- **Content hash:** `{tags['mf.data_hash']}`" in card
    assert (
        f"- **Rows:** {tags['mf.train_rows']} for training, {tags['mf.holdout_rows']} held" in card
    )
    schema = json.loads(tags["mf.schema"])
    assert all(f"| {column} | {dtype} |" in card for column, dtype in schema.items())
    if spec.promotion.slices:  # each slice's row, and the largest gap
        assert "Largest fairness gap between a slice and the whole: " in card
        slices = json.loads(tags["mf.slices"])
        assert slices and all(f"| {s['slice']} | {s['rows']} | " in card for s in slices)
    assert "- **Drift:** not known yet (no drift report)" in card  # nothing served yet
    assert f"[champion v{champion.version} in MLflow](" in card

    client = MlflowClient(model_registry().tracking_uri)
    stored = client.download_artifacts(champion.run_id, "model_card.md")
    assert Path(stored).read_text() == card
    html = Path(client.download_artifacts(champion.run_id, "model_card.html")).read_text()
    assert f"<h1>Model card: {unit}</h1>" in html and "<table>" in html


def test_the_logged_model_loads_back_and_predicts(copy_example) -> None:
    import mlflow.pyfunc

    root = copy_example("demand_forecast", segments=False)
    assert run(root).success
    model = mlflow.pyfunc.load_model("models:/demand_forecast@champion")
    example = model.metadata.load_input_example()
    assert len(model.predict(example)) == len(example)


def test_corrupt_raw_row_blocks_everything_downstream_and_fails_the_run(copy_example) -> None:
    root = copy_example("demand_forecast", segments=False)
    project = load_project(root)
    seed_data(project)
    sales = local_home().data("demand_forecast") / "sales.csv"
    with sales.open("a", newline="") as f:  # a price of -3: the kind of row a bad export brings
        csv.writer(f).writerow(["2026-05-01", "p999", "uk", -3.0, 0, 12.5, 40.0])

    outcome = train(project, instance=DagsterInstance.get())

    assert not outcome.success
    assert list(outcome.failed_checks) == ["raw:raw_schema"]
    assert "price" in outcome.failed_checks["raw:raw_schema"]
    assert "-3.0" in outcome.failed_checks["raw:raw_schema"]
    instance = DagsterInstance.get()
    assert instance.get_run_by_id(outcome.run_id).is_failure
    # raw itself is kept for inspection; nothing downstream of it ran
    assert instance.get_latest_materialization_event(AssetKey(["demand_forecast", "raw"]))
    for step in STEPS[1:]:
        assert (
            instance.get_latest_materialization_event(AssetKey(["demand_forecast", step])) is None
        )
    assert model_registry().latest_version("demand_forecast") is None


def test_champion_moves_only_for_a_better_candidate_and_rollback_restores_it(copy_example) -> None:
    root = copy_example("demand_forecast", segments=False)
    registry = model_registry()

    set_param(root, alpha=100.0)  # v1: decent
    assert run(root).promoted

    set_param(root, alpha=1000.0)  # v2: clearly worse
    worse = run(root)
    assert worse.success and not worse.promoted
    assert "kept v1" in worse.decision
    assert registry.champion("demand_forecast").version == "1"
    assert registry.latest_version("demand_forecast").tags["mf.verdict"] == "failed"

    set_param(root, alpha=1.0)  # v3: better than v1 by more than min_improvement
    better = run(root)
    assert better.promoted and better.champion == "3"

    history = registry.history("demand_forecast")
    assert [(m.event, m.from_version, m.to_version) for m in history] == [
        ("promote", None, "1"),
        ("promote", "1", "3"),
    ]
    assert history[1].metrics_after["mae"] < history[1].metrics_before["mae"]
    assert history[1].dagster_run_id == better.run_id
    rollout = rollout_store().active("demand_forecast")  # the endpoint asset started it
    assert (rollout.stable_version, rollout.canary_version) == ("1", "3")
    assert (rollout.state, rollout.percent) == ("canary", 5)
    cli = CliRunner()
    (status,) = json.loads(cli.invoke(main, ["status", "--json"]).output)["models"]
    assert status["rollout"] == "v1 -> v3, step 1/4: 5% of requests"

    result = cli.invoke(main, ["rollback", "demand_forecast", "--reason", "bad live metrics"])
    assert result.exit_code == 0, result.output
    assert "champion v3 -> v1" in result.output
    assert "cancelled the rollout" in result.output
    assert "model card refreshed for v1" in result.output
    card = (
        DagsterInstance.get()
        .get_latest_materialization_event(AssetKey(["demand_forecast", "model_card"]))
        .asset_materialization.metadata["card"]
        .value
    )
    assert re.search(
        r"- \*\*Champion:\*\* v1\n  - put back by a rollback \S+ by .+: bad live metrics\n", card
    )
    assert rollout_store().active("demand_forecast") is None
    assert registry.champion("demand_forecast").version == "1"
    assert registry.history("demand_forecast")[-1].reason == "bad live metrics"
    (observed,) = (
        DagsterInstance.get()
        .fetch_observations(AssetKey(["demand_forecast", "champion"]), limit=1)
        .records
    )
    observation = observed.asset_observation
    assert observation.metadata["champion_version"].value == "1"
    assert observation.metadata["reason"].value == "bad live metrics"

    again = cli.invoke(main, ["rollback", "demand_forecast"])
    assert again.exit_code == 1
    assert "v1 was the first champion" in again.output and "Traceback" not in again.output


def test_manual_policy_never_promotes_by_itself(copy_example) -> None:
    root = copy_example("breast_cancer")
    registry = model_registry()

    for _ in range(2):
        outcome = run(root)
        assert outcome.success and not outcome.promoted
        assert "awaiting approval" in outcome.decision
    assert registry.champion("breast_cancer") is None

    approved = run(root, approve=True)
    assert approved.promoted and approved.champion == "3"
    assert registry.history("breast_cancer")[-1].actor != "dagster"


def test_approval_cannot_push_a_candidate_through_a_failing_gate(copy_example) -> None:
    root = copy_example(
        "breast_cancer",
        edit=lambda s: s["promotion"].update(thresholds={"roc_auc": {"min": 0.99999}}),
    )
    outcome = run(root, approve=True)
    assert not outcome.success
    assert any("cannot be promoted" in e and "roc_auc" in e for e in outcome.errors)
    assert model_registry().champion("breast_cancer") is None


def test_status_reports_champion_and_last_verdict(copy_example) -> None:
    root = copy_example("demand_forecast", segments=False)
    set_param(root, alpha=100.0)
    run(root)
    set_param(root, alpha=1000.0)
    run(root)

    result = CliRunner().invoke(main, ["status", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["models"]
    assert row["model"] == "demand_forecast"
    assert row["champion"] == "1" and row["last_candidate"] == "2"
    assert row["last_verdict"] == "failed"
    assert 0 < row["champion_metric"] < row["last_candidate_metric"]
    assert row["why"].startswith("auto: gate passed")

    text = CliRunner().invoke(main, ["status"])
    assert "demand_forecast: champion v1 mae=" in text.output
    assert "last candidate v2: failed" in text.output

    # The leaderboard: every champion's standard metrics side by side, a table per task.
    assert run(copy_example("breast_cancer"), approve=True).promoted
    result = CliRunner().invoke(main, ["status", "--json"])
    rows = {found["model"]: found for found in json.loads(result.output)["models"]}
    regression = rows["demand_forecast"]["champion_metrics"]
    assert set(regression) == {"mae", "rmse", "r2", "mape"}
    assert regression["mae"] == pytest.approx(rows["demand_forecast"]["champion_metric"])
    classification = rows["breast_cancer"]["champion_metrics"]
    assert {"accuracy", "f1", "roc_auc"} <= set(classification)
    board = CliRunner().invoke(main, ["status"]).output.split("Champions on their holdout")[1]
    tables = {table.split()[0]: table.splitlines() for table in board.strip().split("\n\n")[1:]}
    assert tables["regression"][0].split()[1:] == ["mae↓", "rmse↓", "r2↑", "mape↓"]
    assert tables["regression"][1].split() == [
        "demand_forecast",
        "v1",
        f"{regression['mae']:.4g}*",  # its gate's metric
        *(f"{regression[m]:.4g}" for m in ("rmse", "r2", "mape")),
    ]
    arrow = {"maximize": "↑", "minimize": "↓"}
    ordered = sorted(classification, key=list(METRICS).index)
    names = [f"{name}{arrow[METRICS[name].direction]}" for name in ordered]
    assert tables["classification"][0].split()[1:] == names  # one column per metric
    assert tables["classification"][1].startswith("breast_cancer v1")


def test_a_model_with_a_broken_spec_fails_clearly_on_the_cli(copy_example) -> None:
    copy_example("demand_forecast", edit=lambda s: s["metric"].update(direction="up"))
    result = CliRunner().invoke(main, ["train", "demand_forecast"])
    assert result.exit_code == 1
    assert "model_projects/demand_forecast/model.yaml: metric.direction" in result.output
    assert "Traceback" not in result.output


def test_rollback_without_champion_is_a_clear_error(copy_example) -> None:
    copy_example("demand_forecast", segments=False)
    with pytest.raises(RegistryError, match="has no champion"):
        model_registry().rollback("demand_forecast", actor="test")


def test_cli_seeds_trains_and_skips_models_that_have_a_champion(copy_example) -> None:
    copy_example("demand_forecast")  # as shipped: one champion per marketplace
    cli = CliRunner()
    seeded = cli.invoke(main, ["seed"])
    assert seeded.exit_code == 0 and "demand_forecast: seeded" in seeded.output
    assert (local_home().data("demand_forecast") / "sales.csv").is_file()

    trained = cli.invoke(main, ["train", "--if-no-champion"])
    assert trained.exit_code == 0, trained.output
    for segment in ("uk", "de", "us"):
        assert f"demand_forecast[{segment}]: promoted; champion v1" in trained.output

    again = cli.invoke(main, ["train", "--if-no-champion"])
    for segment in ("uk", "de", "us"):
        assert f"demand_forecast[{segment}]: has a champion, skipping" in again.output
        assert model_registry().latest_version(f"demand_forecast.{segment}").version == "1"
