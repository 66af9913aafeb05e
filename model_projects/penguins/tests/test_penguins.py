"""penguins's own tests: the packaged data is what the features and the model expect.

Model Factory adds the contract tests (schemas, training, gate, serving) by itself.
"""

from __future__ import annotations

from pathlib import Path

from modelfactory.project.loader import load_project

project = load_project(Path(__file__).resolve().parents[1])
features = project.module("features")
schemas = project.module("schemas")


def test_the_packaged_data_has_three_species_and_missing_values(tmp_path: Path) -> None:
    raw = schemas.RawSchema.validate(features.load_raw(tmp_path))
    assert len(raw) == 344
    assert sorted(raw["species"].unique()) == schemas.SPECIES
    assert raw["sex"].isna().sum() == 11  # the missing values the imputer must fill
    features_ = schemas.FeatureSchema.validate(features.build_features(raw))
    assert "year" not in features_.columns
