"""demand_forecast's own tests: the simulator, the features, and that training recovers truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfactory.project.loader import load_project

project = load_project(Path(__file__).resolve().parents[1])
simulate = project.module("simulate")
features = project.module("features")
schemas = project.module("schemas")
train = project.module("train")


def test_simulator_is_deterministic_and_shaped() -> None:
    first, second = simulate.simulate(n_days=10, seed=3), simulate.simulate(n_days=10, seed=3)
    assert first.equals(second)
    assert len(first) == 10 * 20 * len(simulate.MARKETPLACES)


def test_drift_can_change_one_marketplace_only() -> None:
    calm = simulate.simulate(n_days=30, seed=4)
    moved = simulate.simulate(n_days=30, seed=4, drift=0.5, concept=0.3, only=["de"])
    de, elsewhere = moved["marketplace"] == "de", moved["marketplace"] != "de"
    assert moved[elsewhere].equals(calm[elsewhere])  # uk and us: the same world, row for row
    assert moved.loc[de, "price"].mean() > 1.4 * calm.loc[de, "price"].mean()


def test_seeded_data_passes_both_schemas(tmp_path: Path) -> None:
    simulate.seed_data(tmp_path)
    raw = schemas.RawSchema.validate(features.load_raw(tmp_path))
    schemas.FeatureSchema.validate(features.build_features(raw))


def test_load_raw_says_how_to_get_data(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="modelfactory seed demand_forecast"):
        features.load_raw(tmp_path)


def test_training_recovers_the_simulated_coefficients() -> None:
    frame = features.build_features(simulate.simulate(n_days=200, seed=1))
    X, y = frame.drop(columns=["units_sold", "date"]), frame["units_sold"]
    model = train.train(X, y, train.Params(alpha=1e-3))
    coefficients = dict(zip(train.NUMERIC, model[-1].coef_[-len(train.NUMERIC) :], strict=True))
    for name, truth in simulate.COEFFICIENTS.items():
        # 4 standard errors of an OLS coefficient: fails for a broken model, not for noise
        tolerance = 4 * simulate.NOISE_SD / (len(X) ** 0.5 * X[name].std())
        assert coefficients[name] == pytest.approx(truth, abs=tolerance), name
