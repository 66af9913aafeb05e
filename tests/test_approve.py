"""A person approves the candidate that was evaluated, on real parts: Dagster runs on a real
instance, MLflow's registry on sqlite, the audit trail in the platform's sqlite database.

One manual-policy model is trained a few times in a row (module-scoped fixtures, each
building on the one before), and each step's outcome is kept for the tests to read:
    v1 passes the gate and waits: announced once, with its evaluation's link and the command
    `modelfactory approve` promotes it, recorded as approved by the person who ran it
    v2 fails the gate: refused;  v3 passes: older or unknown versions are refused
    the Launchpad's run config approves v3 through Dagster, with the same refusals
    v4 is trained but never evaluated: refused;  a segment is approved by name
    `make dev`'s `train --approve --by "make dev"`: a manual-policy model's first champion is
    approved by make dev, an auto-policy model's is the gate's (dagster:<run id>)
    a promotion whose model_card (or announcement) fails after the alias moved still reads as
    a promotion that stands;  a champion alias set outside the platform: status shows it
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from dagster import AssetKey, DagsterInstance

from conftest import REPO, copy_project, edit_spec, train_with
from modelfactory.cli import main
from modelfactory.project.loader import load_project
from modelfactory.stores.home import audit_log, local_home, model_registry, rollout_store
from modelfactory.stores.notify import Alert, read_alerts
from modelfactory.stores.urls import dagster_asset_url, dagster_run_url

pytestmark = pytest.mark.slow
MODEL = "demand_forecast"


@dataclass(frozen=True)
class Place:
    home: Path
    repo: Path
    root: Path  # the manual-policy copy of demand_forecast


def manual(spec: dict) -> None:
    spec["promotion"]["policy"] = "manual"


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory):
    """One home and scratch repository for the whole module, with the environment set."""
    base = tmp_path_factory.mktemp("approve")
    home, repo = base / "mfhome", base / "repo"
    (home / "dagster").mkdir(parents=True)
    (repo / "model_projects").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", repo / "dagster.yaml")
    (repo / "workspace.yaml").write_text("load_from: []\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELFACTORY_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        patch.setenv("USER", "alice")
        patch.delenv("MODELFACTORY_ACTOR", raising=False)
        patch.chdir(repo)
        root = copy_project(repo, MODEL, MODEL, edit=manual, segments=False)
        yield Place(home, repo, root)


@pytest.fixture(autouse=True)
def mf_home(place: Place, monkeypatch: pytest.MonkeyPatch) -> Path:
    """conftest gives each test a home of its own; here they share the module's."""
    monkeypatch.setenv("MODELFACTORY_HOME", str(place.home))
    monkeypatch.setenv("DAGSTER_HOME", str(place.home / "dagster"))
    monkeypatch.chdir(place.repo)
    return place.home


def approve(*args: str) -> Result:
    return CliRunner().invoke(main, ["approve", *args])


def waiting() -> list[Alert]:
    return [a for a in read_alerts(local_home().alerts_log) if a.event == "awaiting_approval"]


def launchpad(place: Place, config: str):
    """A run of champion, endpoint and model_card with run config as typed in the Launchpad."""
    from modelfactory.orchestration.assets import train_job_name
    from modelfactory.orchestration.definitions import build_definitions

    job = build_definitions(load_project(place.root)).resolve_job_def(train_job_name(MODEL))
    return job.execute_in_process(
        instance=DagsterInstance.get(),
        asset_selection=[AssetKey([MODEL, s]) for s in ("champion", "endpoint", "model_card")],
        run_config=yaml.safe_load(config),
        raise_on_error=False,
    )


def latest_card() -> str:
    (record,) = (
        DagsterInstance.get().fetch_materializations(AssetKey([MODEL, "model_card"]), limit=1)
    ).records
    return record.asset_materialization.metadata["card"].value


def moves() -> list:
    return [e for e in audit_log().timeline(MODEL) if e.kind in {"promote", "rollback"}]


@pytest.fixture(scope="module")
def v1(place: Place) -> dict:
    """v1 trained: the gate passes and it waits; champion materialized again, alone."""
    trained = train_with(place.root, alpha=100.0)
    announced = waiting()
    again = launchpad(place, "ops: {}")
    return {"trained": trained, "announced": announced, "again": again, "after": waiting()}


@pytest.fixture(scope="module")
def v1_approved(v1: dict) -> dict:
    approved = approve(MODEL, "--by", "carol", "--reason", "reviewed the holdout")
    return {"approved": approved, "moves": moves(), "card": latest_card(), "twice": approve(MODEL)}


@pytest.fixture(scope="module")
def v2_failed(v1_approved: dict, place: Place) -> dict:
    trained = train_with(place.root, alpha=1000.0)  # worse than v1
    return {"trained": trained, "refused": approve(MODEL), "waiting": waiting()}


@pytest.fixture(scope="module")
def v3_passed(v2_failed: dict, place: Place) -> dict:
    trained = train_with(place.root, alpha=1.0)  # better than v1
    return {
        "trained": trained,
        "older": approve(MODEL, "--version", "2"),
        "unknown": approve(MODEL, "--version", "9"),
        "waiting": waiting(),
    }


@pytest.fixture(scope="module")
def by_launchpad(v3_passed: dict, place: Place) -> dict:
    older = launchpad(
        place, f"ops: {{{MODEL}__champion: {{config: {{version: '2', approved_by: bob}}}}}}"
    )
    nobody = launchpad(place, f"ops: {{{MODEL}__champion: {{config: {{version: '3'}}}}}}")
    approved = launchpad(
        place,
        f"""
ops:
  {MODEL}__champion:
    config:
      version: "3"
      approved_by: bob
      reason: the slices look right
""",
    )
    return {"older": older, "nobody": nobody, "approved": approved, "card": latest_card()}


def errors(result) -> str:
    return " ".join(
        e.event_specific_data.error.message
        for e in result.get_step_failure_events()
        if e.event_specific_data and e.event_specific_data.error
    )


def test_a_waiting_candidate_is_announced_once_with_its_evaluation_and_the_command(
    v1: dict,
) -> None:
    trained = v1["trained"]
    assert not trained.promoted and "awaiting approval" in trained.decision
    assert f"modelfactory approve {MODEL} --version 1" in trained.decision
    assert model_registry().champion(MODEL) is None

    (alert,) = v1["announced"]
    assert alert.model == MODEL and alert.severity == "info"
    assert f"`modelfactory approve {MODEL} --version 1`" in alert.text
    assert "candidate v1 passed the gate and awaits approval" in alert.text
    assert alert.links["evaluation run"] == dagster_run_url(trained.run_id)
    assert alert.links["evaluation"] == dagster_asset_url(MODEL, "evaluation")
    assert alert.links["v1 in MLflow"].endswith(f"/models/{MODEL}/versions/1")

    # Materializing the champion again without approval: no failure, no second announcement.
    again = v1["again"]
    assert again.success
    decision = again.output_for_node(f"{MODEL}__champion")["decision"]
    assert decision.startswith("awaiting approval: candidate v1")
    assert v1["after"] == v1["announced"]


def test_approve_promotes_the_evaluated_candidate_without_retraining(
    v1: dict, v1_approved: dict
) -> None:
    approved = v1_approved["approved"]
    assert approved.exit_code == 0, approved.output
    assert f"{MODEL}: champion none -> v1, approved by carol" in approved.output
    assert model_registry().champion(MODEL).version == "1"
    assert model_registry().latest_version(MODEL).version == "1"  # nothing retrained

    (move,) = v1_approved["moves"]
    assert move.details["actor"] == "approved by carol"
    assert move.details["reason"] == "reviewed the holdout"
    assert "promoted: champion vnone -> v1 approved by carol: reviewed the holdout" in move.text
    run = DagsterInstance.get().get_run_by_id(move.details["dagster_run_id"])  # its own run
    assert run.tags["modelfactory/approved_by"] == "carol" and run.run_id in approved.output
    assert {key.path[-1] for key in run.asset_selection} == {"champion", "endpoint", "model_card"}
    assert "approved by carol: reviewed the holdout" in v1_approved["card"]
    assert "- **Champion:** v1" in v1_approved["card"]

    history = CliRunner().invoke(main, ["history", MODEL]).output
    assert "approved by carol" in history and "alert promoted (info)" in history

    twice = v1_approved["twice"]
    assert twice.exit_code == 1 and "v1 is already the champion" in twice.output


def test_a_candidate_that_failed_the_gate_is_refused_and_not_announced(v2_failed: dict) -> None:
    assert not v2_failed["trained"].promoted
    refused = v2_failed["refused"]
    assert refused.exit_code == 1, refused.output
    assert "v2 failed the gate and cannot be promoted" in refused.output
    assert "Traceback" not in refused.output
    assert [a.text.split()[1] for a in v2_failed["waiting"]] == ["v1"]
    assert model_registry().champion(MODEL).version == "1"


def test_only_the_latest_evaluation_can_be_approved(v3_passed: dict) -> None:
    older = v3_passed["older"]
    assert older.exit_code == 1
    assert "v2 is not the latest evaluation: v3 was evaluated since" in older.output
    unknown = v3_passed["unknown"]
    assert unknown.exit_code == 1 and f"{MODEL} has no version 9" in unknown.output
    assert [a.text.split()[1] for a in v3_passed["waiting"]] == ["v1", "v3"]
    assert "champion: v1" in v3_passed["waiting"][-1].text


def test_the_launchpad_takes_the_same_config_and_refusals(by_launchpad: dict) -> None:
    assert not by_launchpad["older"].success
    assert "v2 is not the latest evaluation" in errors(by_launchpad["older"])
    assert not by_launchpad["nobody"].success
    assert "set `approved_by`" in errors(by_launchpad["nobody"])

    approved = by_launchpad["approved"]
    assert approved.success
    champion = approved.output_for_node(f"{MODEL}__champion")
    assert champion == {"version": "3", "promoted": True, "decision": "the slices look right"}
    (materialization,) = approved.asset_materializations_for_node(f"{MODEL}__champion")
    assert materialization.metadata["approved_by"].value == "bob"
    last = moves()[-1]
    assert last.version == "3" and last.details["actor"] == "approved by bob"
    # As an automatic promotion: the endpoint starts the canary of v3 against v1.
    rollout = rollout_store().active(MODEL)
    assert (rollout.stable_version, rollout.canary_version) == ("1", "3")
    assert rollout.state != "pending"
    assert "approved by bob: the slices look right" in by_launchpad["card"]


def test_a_version_never_evaluated_is_refused(by_launchpad: dict, place: Place) -> None:
    from modelfactory.orchestration.assets import train_job_name
    from modelfactory.orchestration.definitions import build_definitions

    job = build_definitions(load_project(place.root)).resolve_job_def(train_job_name(MODEL))
    steps = ("raw", "features", "split", "candidate")
    result = job.execute_in_process(
        instance=DagsterInstance.get(),
        asset_selection=[AssetKey([MODEL, s]) for s in steps],
        raise_on_error=False,
    )
    assert result.success
    never = approve(MODEL, "--version", "v4")
    assert never.exit_code == 1
    assert "v4 was never evaluated; the latest evaluated is v3" in never.output
    latest = approve(MODEL)  # the latest evaluated, v3, is the champion already
    assert latest.exit_code == 1 and "v3 is already the champion" in latest.output


def test_a_segment_is_approved_by_name(place: Place) -> None:
    from modelfactory.orchestration.runs import seed_data, train

    segmented = copy_project(place.repo, MODEL, "segmented", edit=manual)
    try:
        project = load_project(segmented)
        seed_data(project)
        waits = train(project, instance=DagsterInstance.get(), segment="uk")
        missing = approve("segmented")
        unknown = approve("segmented", "--segment", "fr")
        untrained = approve("segmented", "--segment", "de")
        approved = approve("segmented", "--segment", "uk", "--by", "dave")
    finally:
        shutil.rmtree(segmented)  # `make dev` below would train every segment
    assert "awaiting approval" in waits.decision
    assert "`modelfactory approve segmented --segment uk --version 1`" in waits.decision
    assert missing.exit_code == 1 and "name one with --segment" in missing.output
    assert unknown.exit_code == 1 and "has no segment 'fr'" in unknown.output
    assert untrained.exit_code == 1
    assert "segmented.de: no candidate has been evaluated yet" in untrained.output
    assert approved.exit_code == 0, approved.output
    assert "segmented.uk: champion none -> v1, approved by dave" in approved.output
    assert model_registry().champion("segmented.uk").version == "1"
    assert model_registry().champion("segmented.de") is None


@dataclass(frozen=True)
class Dev:
    auto: Path  # demand_forecast as it is: policy auto
    manual: Path  # the same, policy manual
    trained: Result  # `train auto manual --approve --by "make dev"`, as `modelfactory dev` runs


def first_alpha(spec: dict) -> None:
    spec["params"]["alpha"] = 100.0  # so that alpha 1.0 passes the gate against it later


@pytest.fixture(scope="module")
def dev_trained(place: Place) -> Dev:
    """Two more models trained by the command `modelfactory dev` runs for a first champion."""
    auto = copy_project(place.repo, MODEL, "auto_forecast", edit=first_alpha, segments=False)

    def manual_first(spec: dict) -> None:
        manual(spec)
        first_alpha(spec)

    hand = copy_project(place.repo, MODEL, "manual_forecast", edit=manual_first, segments=False)
    command = ["train", "auto_forecast", "manual_forecast", "--approve", "--if-no-champion"]
    trained = CliRunner().invoke(main, [*command, "--by", "make dev"])
    return Dev(auto, hand, trained)


def promotions(unit: str) -> list:
    return [e for e in audit_log().timeline(unit) if e.kind == "promote"]


def test_make_devs_first_champion_is_approved_by_make_dev_only_under_policy_manual(
    dev_trained: Dev,
) -> None:
    assert dev_trained.trained.exit_code == 0, dev_trained.trained.output
    (manual_move,) = promotions("manual_forecast")
    assert manual_move.details["actor"] == "approved by make dev"
    # Policy auto: the gate alone decided; the trail says so, not "approved by make dev".
    (auto_move,) = promotions("auto_forecast")
    assert auto_move.details["actor"] == f"dagster:{auto_move.details['dagster_run_id']}"
    (record,) = (
        DagsterInstance.get().fetch_materializations(AssetKey(["auto_forecast", "champion"]), 1)
    ).records
    assert "approved_by" not in record.asset_materialization.metadata
    assert record.asset_materialization.metadata["decision"].value.startswith("auto: gate passed")


def artifacts_of(unit: str, version: str) -> Path:
    """The local folder of the MLflow run that logged `version`."""
    from mlflow import MlflowClient

    registry = model_registry()
    run = MlflowClient(registry.tracking_uri).get_run(registry.version(unit, version).run_id)
    return Path(run.info.artifact_uri)


@pytest.fixture(scope="module")
def approved_then_card_failed(dev_trained: Dev) -> dict:
    """manual_forecast v2 waits; its run's artifact folder is a file (nothing can be written
    in it) when it is approved: the alias moves, then model_card cannot store the card."""
    train_with(dev_trained.manual, alpha=1.0)
    folder = artifacts_of("manual_forecast", "2")
    aside = folder.with_name("artifacts.aside")
    folder.rename(aside)
    folder.write_text("not a folder")
    try:
        approved = approve("manual_forecast", "--by", "erin")
    finally:
        folder.unlink()
        aside.rename(folder)
    return {"approved": approved, "moves": promotions("manual_forecast")}


def test_an_approval_whose_model_card_fails_says_the_promotion_stands(
    approved_then_card_failed: dict,
) -> None:
    approved = approved_then_card_failed["approved"]
    assert approved.exit_code == 1, approved.output
    assert "did not promote" not in approved.output and "Traceback" not in approved.output
    assert "manual_forecast: promoted v2 (champion v1 -> v2, approved by erin)" in approved.output
    assert "then model_card failed: " in approved.output
    assert "The promotion stands" in approved.output
    assert "`modelfactory rollback manual_forecast` undoes it" in approved.output
    assert model_registry().champion("manual_forecast").version == "2"
    assert approved_then_card_failed["moves"][-1].details["actor"] == "approved by erin"
    rollout = rollout_store().active("manual_forecast")  # reserved, then started by endpoint
    assert (rollout.stable_version, rollout.canary_version) == ("1", "2")
    assert rollout.state != "pending"


def test_a_rollback_names_its_actor_as_an_approval_does(
    approved_then_card_failed: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One answer to "who acted" (audit.actor): with neither MODELFACTORY_ACTOR nor $USER,
    git's user.email, for a rollback as for an approval."""
    from modelfactory.stores.audit import actor

    monkeypatch.delenv("USER")
    for key, value in {"COUNT": "1", "KEY_0": "user.email", "VALUE_0": "frank@example.com"}.items():
        monkeypatch.setenv(f"GIT_CONFIG_{key}", value)  # git's own config, as if set by hand
    assert actor() == "frank@example.com"
    rolled = CliRunner().invoke(main, ["rollback", "manual_forecast"])
    assert rolled.exit_code == 0, rolled.output
    (move,) = [e for e in audit_log().timeline("manual_forecast") if e.kind == "rollback"]
    assert move.details["actor"] == "frank@example.com"
    assert model_registry().champion("manual_forecast").version == "1"


def test_a_training_whose_announcement_fails_after_the_move_says_the_promotion_stands(
    dev_trained: Dev, place: Place
) -> None:
    """auto_forecast v2 passes the gate while the alerts log cannot be written: the champion
    step moves the alias and records the move, then fails announcing it."""
    edit_spec(dev_trained.auto, lambda spec: spec["params"].update(alpha=1.0))
    alerts = local_home().alerts_log
    aside = alerts.with_name("alerts.aside")
    alerts.rename(aside)
    alerts.mkdir()
    try:
        trained = CliRunner().invoke(main, ["train", "auto_forecast"])
    finally:
        alerts.rmdir()
        aside.rename(alerts)
    assert trained.exit_code == 1, trained.output
    assert "auto_forecast: promoted v2; then champion failed: " in trained.output
    assert "The promotion stands" in trained.output
    assert "training failed for auto_forecast (promoted v2: the promotion stands)" in (
        trained.output
    )
    assert model_registry().champion("auto_forecast").version == "2"
    assert promotions("auto_forecast")[-1].version == "2"


def test_status_shows_a_champion_whose_alias_was_set_outside_the_platform(
    by_launchpad: dict,
) -> None:
    """Someone moves the alias in MLflow's UI: no move of ours records it."""
    from mlflow import MlflowClient

    registry = model_registry()
    mlflow, name = MlflowClient(registry.tracking_uri), registry.registered_name(MODEL)
    mlflow.set_registered_model_alias(name, "champion", "2")
    try:
        shown = CliRunner().invoke(main, ["status"])
        as_json = CliRunner().invoke(main, ["status", "--json"])
    finally:
        mlflow.set_registered_model_alias(name, "champion", "3")
    assert shown.exit_code == 0, shown.output
    assert "Traceback" not in shown.output
    assert f"{MODEL}: champion v2 mae=" in shown.output
    assert "its move is not on record: the alias was set outside Model Factory" in shown.output
    assert as_json.exit_code == 0, as_json.output
    (row,) = [r for r in json.loads(as_json.output)["models"] if r["model"] == MODEL]
    assert row["champion"] == "2" and row["promoted_by"] is None
