"""`modelfactory reproduce` on real parts: a version retrains from its content-addressed
snapshot after the raw data has moved on; a changed or missing snapshot, or changed code, is
said plainly, never a silent mismatch."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from dagster import DagsterInstance

from modelfactory.cli import main
from modelfactory.orchestration.runs import seed_data, train
from modelfactory.project.loader import load_project
from modelfactory.stores.home import local_home, model_registry

pytestmark = pytest.mark.slow
MODEL, UNIT = "demand_forecast", "demand_forecast.uk"


def reproduce(*args: str):
    return CliRunner().invoke(main, ["reproduce", MODEL, *args])


def test_a_version_reproduces_from_its_snapshot_and_a_broken_one_is_named(copy_example) -> None:
    root = copy_example(MODEL)  # as shipped: a model per marketplace
    project = load_project(root)
    seed_data(project)
    assert train(project, instance=DagsterInstance.get(), segment="uk").promoted
    recorded = model_registry().version(UNIT, "1").tags
    # The raw data moves on: a later, different batch lands beside the first.
    project.module("simulate").new_batch(
        local_home().data(MODEL), "later", n_days=30, start="2026-05-01", seed=9, drift=0.3
    )

    result = reproduce("1", "--segment", "uk")
    assert result.exit_code == 0, result.output
    mae = float(recorded["mf.holdout.mae"])
    assert f"{UNIT} v1: mae recorded {mae:.6g}, reproduced {mae:.6g}" in result.output
    assert "matches; same code" in result.output

    snapshot = Path(recorded["mf.snapshot"])
    assert snapshot.parent == local_home().root / "snapshots" / UNIT
    assert snapshot.name == f"{recorded['mf.data_hash']}.parquet"  # content-addressed
    pd.read_parquet(snapshot).iloc[:-1].to_parquet(snapshot, index=False)  # one row lost
    changed = reproduce("1", "--segment", "uk")
    assert changed.exit_code == 1 and "Traceback" not in changed.output
    assert f"the training data snapshot {snapshot} has changed" in changed.output
    assert f"recorded {recorded['mf.data_hash']}" in changed.output
    snapshot.write_bytes(b"not parquet")
    unreadable = reproduce("1", "--segment", "uk")
    assert unreadable.exit_code == 1 and f"snapshot {snapshot} cannot be read" in unreadable.output
    snapshot.unlink()
    missing = reproduce("1", "--segment", "uk")
    assert missing.exit_code == 1 and f"snapshot {snapshot} is missing" in missing.output

    assert "has no version 7" in reproduce("7", "--segment", "uk").output
    assert "name one with --segment" in reproduce("1").output


def test_changed_code_that_changes_the_metric_is_reported_as_a_mismatch(copy_example) -> None:
    root = copy_example(MODEL, segments=False)
    project = load_project(root)
    seed_data(project)
    assert train(project, instance=DagsterInstance.get()).promoted
    train_py = root / "train.py"
    train_py.write_text(
        train_py.read_text().replace("Ridge(alpha=params.alpha)", "Ridge(alpha=5e3)")
    )

    result = reproduce("1")
    assert result.exit_code == 1, result.output
    assert ": DIFFERS; code changed since (recorded " in result.output
