"""diabetes's own tests: the bundled study is what the features and the model expect.

Model Factory adds the contract tests (schemas, training, gate, serving) by itself.
"""

from __future__ import annotations

from pathlib import Path

from modelfactory.project.loader import load_project

project = load_project(Path(__file__).resolve().parents[1])
features = project.module("features")
schemas = project.module("schemas")


def test_the_bundled_study_passes_both_schemas(tmp_path: Path) -> None:
    raw = schemas.RawSchema.validate(features.load_raw(tmp_path))
    assert len(raw) == 442
    built = schemas.FeatureSchema.validate(features.build_features(raw))
    assert {"tc", "ldl", "hdl", "tch", "ltg", "glu"} <= set(built.columns)
    assert sorted(built["sex"].unique()) == [1, 2]
