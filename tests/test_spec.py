"""model.yaml validation: valid specs load, and every kind of mistake gets one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelfactory.errors import SpecError
from modelfactory.project.spec import ModelSpec, load_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "model_projects"

VALID = {
    "name": "churn",
    "owner": "jane@example.com",
    "description": "Who leaves next month.",
    "task": "classification",
    "target": "churned",
    "metric": {"name": "roc_auc", "direction": "maximize"},
}


def write(tmp_path: Path, content: dict | str, folder: str = "churn") -> Path:
    path = tmp_path / "model_projects" / folder / "model.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


@pytest.mark.parametrize("example", ["demand_forecast", "breast_cancer"])
def test_examples_are_valid(example: str) -> None:
    spec = load_spec(EXAMPLES / example / "model.yaml")
    assert spec.name == example
    assert spec.metric.direction in {"maximize", "minimize"}


def test_defaults_fill_optional_sections(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, VALID))
    assert isinstance(spec, ModelSpec)
    assert spec.promotion.policy == "auto"
    assert spec.split.test_size == 0.2
    assert spec.serving.canary.steps == [5, 25, 50, 100]
    assert spec.resources.timeout_seconds == 30 * 60


def changed(**changes: object) -> dict:
    spec = {**VALID}
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = spec
        for part in parents:
            node[part] = dict(node.get(part) or {})
            node = node[part]
        if value is ...:
            node.pop(leaf)
        else:
            node[leaf] = value
    return spec


MISTAKES = [
    # (what is wrong, the spec, words the message must contain)
    ("bad enum", changed(metric__direction="up"), ["metric.direction", "'maximize' or 'minimize'", "'up'"]),
    ("missing field", changed(target=...), ["target is required"]),
    ("typo'd section", {**VALID, "promotoin": {"policy": "auto"}}, ["promotoin is not a known field"]),
    ("out of range", changed(split__test_size=1.5), ["split.test_size", "less than 1", "1.5"]),
    ("unknown metric", changed(metric__name="auc"), ["metric.name", "must be one of", "'auc'"]),
    ("metric of other task", changed(metric__name="mae", metric__direction="minimize"), ["'mae' is a regression metric", "classification"]),
    ("direction against metric", changed(metric__direction="minimize"), ["metric.direction must be 'maximize' for 'roc_auc'"]),
    ("bad cron", changed(schedule__retrain="every monday"), ["schedule.retrain", "5-field cron", "'every monday'"]),
    ("cron out of range", changed(schedule__predict="99 * * * *"), ["schedule.predict", "5-field cron", "'99 * * * *'"]),
    ("live window under min_labels", changed(live_metric={"min_labels": 500, "window": 100}), ["live_metric", "window (100) must be at least min_labels (500)"]),
    ("live tolerance", changed(live_metric={"tolerance": 0}), ["live_metric.tolerance", "greater than 0"]),
    ("bad owner", changed(owner="jane"), ["owner", "email address or 'team:<name>'", "'jane'"]),
    ("threshold on unknown metric", changed(promotion__thresholds={"auc": {"min": 0.9}}), ["promotion.thresholds", "unknown metric 'auc'"]),
    ("empty bounds", changed(promotion__thresholds={"roc_auc": {}}), ["promotion.thresholds.roc_auc", "at least one of 'min' or 'max'"]),
    ("canary steps", changed(serving__canary={"steps": [5, 50]}), ["serving.canary.steps", "end at 100"]),
    ("wrong type", changed(promotion__min_improvement="a lot"), ["promotion.min_improvement", "valid number", "'a lot'"]),
    ("bad memory", changed(resources__memory="2GB"), ["resources.memory", "'2GB'"]),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "content", "expected"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistakes_name_file_field_and_expectation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, content: dict, expected: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, content)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert message.startswith("model_projects/churn/model.yaml: "), message
    for words in expected:
        assert words in message, f"{kind}: {words!r} not in {message!r}"
    assert "Traceback" not in message and "pydantic" not in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: churn\nmetric: {name: roc_auc\n  direction: maximize\n")
    with pytest.raises(SpecError, match=r"model.yaml: not valid YAML \(line \d+, column \d+\)"):
        load_spec(path)


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="expected a mapping of fields, got list"):
        load_spec(write(tmp_path, "- name: churn\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"model.yaml: file not found"):
        load_spec(tmp_path / "nowhere" / "model.yaml")


def test_name_must_match_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="name must match the project folder 'other', got 'churn'"):
        load_spec(write(tmp_path, VALID, folder="other"))


def test_several_mistakes_are_all_reported(tmp_path: Path) -> None:
    spec = changed(metric__direction="up", split__test_size=0)
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, spec))
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert any("metric.direction" in line for line in lines)
    assert any("split.test_size" in line for line in lines)


def test_replay_on_roc_auc_is_valid_model_yaml_for_a_classifier(tmp_path: Path) -> None:
    """The stored batch scores hold a binary model's positive-class probability, so replay
    on roc_auc works for it; only a multiclass model cannot, and model.yaml does not say
    how many classes there are: gate.score refuses that case once the model is trained
    (tests/test_classification.py)."""
    spec = {
        **VALID,
        "split": {"by": "signup_date"},
        "predictions": {"daily_from": "2026-01-01"},
        "promotion": {"replay": {"days": 7}},
    }
    assert load_spec(write(tmp_path, spec)).promotion.replay.days == 7
