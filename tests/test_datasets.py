"""Holdout splitting, hashing and schema validation on plain DataFrames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from modelfactory.errors import ProjectError
from modelfactory.ml.datasets import SPLIT_COLUMN, content_hash, split_frame, validate_frame, xy
from modelfactory.project.spec import ModelSpec

BASE = {
    "name": "m",
    "owner": "a@b.io",
    "description": "d",
    "target": "y",
}


def spec(**extra) -> ModelSpec:
    return ModelSpec.model_validate({**BASE, **extra})


def frame(n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "date": pd.date_range("2026-01-01", periods=n, freq="D"),
            "x": rng.normal(size=n),
            "y": rng.integers(0, 2, size=n),
        }
    )


def regression(**split) -> ModelSpec:
    return spec(task="regression", metric={"name": "mae", "direction": "minimize"}, split=split)


def test_time_split_holds_out_the_latest_rows() -> None:
    marked = split_frame(
        frame().sample(frac=1, random_state=1), regression(by="date", test_size=0.25)
    )
    train, test = (marked[marked[SPLIT_COLUMN] == part] for part in ("train", "test"))
    assert len(test) == 25
    assert train["date"].max() < test["date"].min()


def test_random_split_is_seeded_and_stratified() -> None:
    classify = spec(task="classification", metric={"name": "accuracy", "direction": "maximize"})
    first, second = split_frame(frame(), classify), split_frame(frame(), classify)
    assert first[SPLIT_COLUMN].tolist() == second[SPLIT_COLUMN].tolist()
    test = first[first[SPLIT_COLUMN] == "test"]
    assert len(test) == 20
    assert abs(test["y"].mean() - first["y"].mean()) < 0.06


def test_xy_drops_target_split_and_time_columns() -> None:
    s = regression(by="date")
    X, y = xy(split_frame(frame(), s), s, "train")
    assert list(X.columns) == ["x"]
    assert y.name == "y" and len(X) == len(y) == 80


def test_split_on_a_missing_column_names_it() -> None:
    with pytest.raises(ProjectError, match=r"split.by names column 'day'.*date, x, y"):
        split_frame(frame(), regression(by="day"))


def test_content_hash_is_stable_and_sensitive() -> None:
    a = frame()
    assert content_hash(a) == content_hash(a.copy())
    changed = a.copy()
    changed.loc[3, "x"] += 1e-9
    assert content_hash(changed) != content_hash(a)
    assert content_hash(a.rename(columns={"x": "z"})) != content_hash(a)


def test_validation_reports_every_failure() -> None:
    schema = pa.DataFrameSchema({"x": pa.Column(float, pa.Check.ge(0)), "y": pa.Column(int)})
    bad = pd.DataFrame({"x": [1.0, -1.0, -2.0], "y": [1, 2, 3]})
    outcome = validate_frame(schema, bad, what="load_raw")
    assert not outcome.passed
    assert len(outcome.failures) == 2
    assert "x: greater_than_or_equal_to(0)" in outcome.describe()
    assert validate_frame(schema, bad.assign(x=[1.0, 2.0, 3.0]), what="load_raw").passed


def test_validation_rejects_a_non_frame() -> None:
    with pytest.raises(ProjectError, match="load_raw must return a pandas DataFrame, got list"):
        validate_frame(pa.DataFrameSchema({}), [1, 2], what="load_raw")
