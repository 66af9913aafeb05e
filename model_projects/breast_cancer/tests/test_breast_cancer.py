"""breast_cancer's own tests: the bundled data passes its schemas and the label is as documented."""

from __future__ import annotations

from pathlib import Path

from modelfactory.project.loader import load_project

project = load_project(Path(__file__).resolve().parents[1])
features = project.module("features")
schemas = project.module("schemas")


def test_raw_and_features_pass_their_schemas(tmp_path: Path) -> None:
    raw = schemas.RawSchema.validate(features.load_raw(tmp_path))
    assert len(raw) == 569
    schemas.FeatureSchema.validate(features.build_features(raw))


def test_malignant_is_the_minority_class(tmp_path: Path) -> None:
    raw = features.load_raw(tmp_path)
    assert raw["malignant"].sum() == 212  # 212 malignant, 357 benign in the Wisconsin data
