"""`modelfactory new`, run as a data scientist runs it: the installed command in a scratch copy
of the repository, then the new project's own tests and contract tests, a full
materialization, and Dagster's loader over the whole workspace."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_workspace import REPO, validate

from modelfactory.testing import CONTRACTS

MODELFACTORY = Path(sys.executable).with_name("modelfactory")
WORKSPACE = """\
# One code location for every model project: a broken model never takes the others down.
load_from:
  - python_file:
      relative_path: model_projects/definitions.py
      location_name: model_projects
      working_directory: .
"""


@pytest.fixture
def repo(workdir: Path) -> Path:
    """A scratch repository with one example project and a commented workspace.yaml."""
    shutil.copytree(
        REPO / "model_projects" / "demand_forecast",
        workdir / "model_projects" / "demand_forecast",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(REPO / "pyproject.toml", workdir / "pyproject.toml")  # ruff and pytest settings
    shutil.copy(REPO / "model_projects" / "definitions.py", workdir / "model_projects")
    shutil.copy(REPO / "model_projects" / "defs.yaml", workdir / "model_projects")
    (workdir / "workspace.yaml").write_text(WORKSPACE)
    return workdir


def run(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=repo,
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )


def new(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run(repo, str(MODELFACTORY), "new", *args, stdin=stdin)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("price_model", ["--task", "regression", "--target", "price", "--metric", "rmse"]),
        ("churn", ["--task", "classification", "--target", "churned", "--predict", "0 * * * *"]),
    ],
)
def test_a_new_project_passes_its_tests_trains_and_loads_beside_the_others(
    repo: Path, name: str, flags: list[str]
) -> None:
    created = new(repo, name, "--no-input", "--owner", "jane@example.com", *flags)
    assert created.returncode == 0, created.stdout
    assert f"created model_projects/{name}/" in created.stdout
    folder = repo / "model_projects" / name
    assert sorted(p.name for p in folder.iterdir()) == [
        "features.py", "model.yaml", "schemas.py", "simulate.py", "tests", "train.py",
    ]  # fmt: skip
    assert (repo / "workspace.yaml").read_text() == WORKSPACE  # the fleet's location has it

    lint = run(repo, sys.executable, "-m", "ruff", "check", f"model_projects/{name}")
    assert lint.returncode == 0, lint.stdout
    formatted = run(
        repo, sys.executable, "-m", "ruff", "format", "--check", f"model_projects/{name}"
    )
    assert formatted.returncode == 0, formatted.stdout

    tests = run(repo, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                f"model_projects/{name}")  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:]
    # its 2 own tests and the contracts every project gets
    assert f"{2 + len(CONTRACTS)} passed" in tests.stdout

    trained = run(repo, str(MODELFACTORY), "train", name)
    assert trained.returncode == 0, trained.stdout[-3000:]
    assert f"{name}: promoted; champion v1" in trained.stdout

    loaded = validate(repo / "workspace.yaml")
    assert loaded.returncode == 0, loaded.stdout[-3000:]
    assert "Validation successful for code location model_projects" in loaded.stdout
    listed = run(repo, sys.executable, "-m", "dagster", "asset", "list", "-f",
                 "model_projects/definitions.py")  # fmt: skip
    assert listed.returncode == 0, listed.stdout[-3000:]
    for model in ("demand_forecast", name):  # both models in the one location
        assert f"{model}/candidate" in listed.stdout
    assert "/project" not in listed.stdout  # neither is broken


def test_answers_are_asked_for_and_shape_the_spec(repo: Path) -> None:
    answers = [
        "classification",  # task
        "team:growth",  # owner
        "Will a customer leave?",  # description
        "churned",  # target
        "accuracy!",  # not a metric: asked again
        "f1",
        "",  # direction: the metric's default
        "manual",
        "0.05",
        "0.25",
        "2",
        "4Gi",
        "1h",
        "0 4 * * *",
        "none",
    ]
    created = new(repo, "churn", stdin="\n".join(answers) + "\n")
    assert created.returncode == 0, created.stdout
    assert "is not one of" in created.stdout  # click's refusal of 'accuracy!'
    spec = yaml.safe_load((repo / "model_projects" / "churn" / "model.yaml").read_text())
    assert spec["owner"] == "team:growth" and spec["description"] == "Will a customer leave?"
    assert (spec["task"], spec["target"]) == ("classification", "churned")
    assert spec["metric"] == {"name": "f1", "direction": "maximize"}
    assert spec["promotion"]["policy"] == "manual"
    assert spec["promotion"]["min_improvement"] == 0.05
    assert spec["split"]["test_size"] == 0.25
    assert spec["resources"] == {"cpus": 2, "memory": "4Gi", "timeout": "1h"}
    assert spec["schedule"] == {"retrain": "0 4 * * *"}


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("../x", "cannot hold path separators or '..'"),
        ("a/b", "cannot hold path separators or '..'"),
        ("class", "'class' is a Python keyword"),
        ("demand_forecast", "model_projects/demand_forecast already exists"),
        ("", "a model needs a name"),
        ("Churn-2", "use lowercase letters, digits and underscores"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_written(repo: Path, name: str, says: str) -> None:
    before = sorted(p.name for p in (repo / "model_projects").iterdir())
    refused = new(repo, name, "--no-input")
    assert refused.returncode == 1 and says in refused.stdout, refused.stdout
    assert "Traceback" not in refused.stdout
    assert sorted(p.name for p in (repo / "model_projects").iterdir()) == before
    assert (repo / "workspace.yaml").read_text() == WORKSPACE


def test_answers_the_spec_rejects_write_nothing(repo: Path) -> None:
    refused = new(repo, "price_model", "--no-input", "--metric", "mae", "--direction", "maximize")
    assert refused.returncode == 1
    assert "modelfactory new price_model: metric.direction must be 'minimize'" in refused.stdout
    assert not (repo / "model_projects" / "price_model").exists()
    assert not list((repo / "model_projects").glob(".new-*"))  # no staging left behind
    assert (repo / "workspace.yaml").read_text() == WORKSPACE


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("class", "must be a Python identifier"),
        ("units sold", "must be a Python identifier"),
        ("x1", "one of the template's input columns"),
    ],
)
def test_a_target_the_schema_cannot_hold_writes_nothing(repo: Path, target: str, says: str) -> None:
    refused = new(repo, "price_model", "--no-input", "--target", target)
    assert refused.returncode == 1 and says in refused.stdout, refused.stdout
    assert not (repo / "model_projects" / "price_model").exists()
    assert (repo / "workspace.yaml").read_text() == WORKSPACE


def test_new_outside_a_repository_refuses(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = new(elsewhere, "churn", "--no-input")
    assert refused.returncode == 1 and "no workspace.yaml here or above" in refused.stdout
    assert list(elsewhere.iterdir()) == []


@pytest.mark.slow
def test_breaking_a_new_project_fails_the_named_contract_pointing_at_the_file(repo: Path) -> None:
    assert new(repo, "churn", "--no-input", "--task", "classification").returncode == 0
    folder = repo / "model_projects" / "churn"
    features, train = folder / "features.py", folder / "train.py"
    intact_features, intact_train = features.read_text(), train.read_text()

    features.write_text(intact_features.replace('            "x2": raw["x2"].astype(float),\n', ""))
    dropped = run(repo, str(MODELFACTORY), "check", "churn", "--contracts-only")
    assert dropped.returncode == 1
    assert "FAILED model_projects/churn/model.yaml::build_features_passes_feature_schema" in (
        dropped.stdout
    )
    assert "model_projects/churn/features.py: build_features dropped column 'x2'" in dropped.stdout

    features.write_text(intact_features)
    train.write_text(intact_train.replace("    return model.fit(X, y)", "    return model"))
    unfitted = run(repo, str(MODELFACTORY), "check", "churn", "--contracts-only")
    assert unfitted.returncode == 1
    assert "FAILED model_projects/churn/model.yaml::train_returns_fitted_estimator" in (
        unfitted.stdout
    )
    assert "model_projects/churn/train.py: train returned an unfitted Pipeline" in unfitted.stdout
