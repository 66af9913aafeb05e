"""`modelfactory diff` on real parts: two versions trained on different simulated data, and
the one screen that says why they differ."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance

from conftest import edit_spec
from modelfactory.cli import main
from modelfactory.orchestration.runs import seed_data, train
from modelfactory.project.loader import load_project
from modelfactory.stores.home import local_home, model_registry

pytestmark = pytest.mark.slow
MODEL, UNIT = "demand_forecast", "demand_forecast.uk"


def test_diff_names_the_shifted_features_and_the_metric_change(copy_example) -> None:
    root = copy_example(MODEL)  # as shipped: uk is its own registered model
    project = load_project(root)
    seed_data(project)
    instance = DagsterInstance.get()
    assert train(project, instance=instance, segment="uk").success
    # A different world lands: uk's prices and temperatures move, and price sells otherwise.
    project.module("simulate").new_batch(
        local_home().data(MODEL), "changed", n_days=120, start="2026-05-01", seed=4,
        drift=1.0, concept=0.3, only=["uk"],
    )  # fmt: skip
    edit_spec(root, lambda spec: spec["params"].update(alpha=2.0))
    assert train(load_project(root), instance=instance, segment="uk").success

    result = CliRunner().invoke(main, ["diff", MODEL, "1", "2", "--segment", "uk"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"{UNIT}: v1 -> v2\n")
    registry = model_registry()
    one, two = (registry.version(UNIT, v).tags for v in ("1", "2"))
    mae = (float(one["mf.holdout.mae"]), float(two["mf.holdout.mae"]))
    assert f"mae: {mae[0]:.4g} -> {mae[1]:.4g} (" in out and "(the gate's metric)" in out
    assert f"training rows: {one['mf.train_rows']} -> {two['mf.train_rows']}" in out
    assert f"content hash: {one['mf.data_hash']} -> {two['mf.data_hash']}" in out
    section = out.split("distribution shift of the training inputs:\n")[1].split("\n\n")[0]
    scores = section.splitlines()
    assert [line.split(":")[0].strip() for line in scores[:2]] == ["price", "temperature"]
    assert scores[-1] == "  shifted (over 0.2): price"  # the simulator's drift knob moved it
    assert "alpha: 1.0 -> 2.0" in out  # params, from the audit trail
    assert "code version: " in out  # model.yaml changed, so the code version did
    assert "environment:\n  no change" in out

    same = CliRunner().invoke(main, ["diff", MODEL, "2", "2", "--segment", "uk"])
    assert "distribution shift of the training inputs:\n  same data" in same.output
    unknown = CliRunner().invoke(main, ["diff", MODEL, "1", "9", "--segment", "uk"])
    assert unknown.exit_code == 1 and "has no version 9" in unknown.output
