"""Loading model projects: lazy plain modules, typed params, clear errors, and the import rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from modelfactory.errors import ProjectError, SpecError
from modelfactory.project.loader import discover_projects, load_project

REPO = Path(__file__).resolve().parents[1]
PLAIN_FILES = ("features.py", "train.py", "schemas.py", "simulate.py")


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize(
    "path",
    [p for p in sorted((REPO / "model_projects").glob("*/*.py")) if p.name in PLAIN_FILES],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_model_project_files_stay_plain_python(path: Path) -> None:
    """DESIGN rule: project files never import dagster or mlflow (they run in a notebook)."""
    assert not imported_roots(path) & {"dagster", "mlflow", "modelfactory"}


def test_examples_load_and_their_functions_resolve(copy_example) -> None:
    project = load_project(copy_example("demand_forecast"))
    assert project.name == "demand_forecast"
    assert callable(project.function("features", "build_features"))
    params = project.params()
    assert type(params).__name__ == "Params" and params.alpha == 1.0
    assert len(project.code_version) == 12


def test_code_version_follows_the_files(copy_example) -> None:
    root = copy_example("demand_forecast")
    before = load_project(root).code_version
    (root / "train.py").write_text((root / "train.py").read_text() + "\n# tuned\n")
    assert load_project(root).code_version != before


def test_missing_file_is_named(copy_example) -> None:
    root = copy_example("demand_forecast")
    (root / "train.py").unlink()
    with pytest.raises(ProjectError, match=r"missing train.py; every model project has"):
        load_project(root)


def test_missing_function_is_named(copy_example) -> None:
    root = copy_example("demand_forecast")
    (root / "features.py").write_text("def load_raw(data_dir):\n    return None\n")
    with pytest.raises(ProjectError, match=r"features.py: defines no function 'build_features'"):
        load_project(root).function("features", "build_features")


def test_params_are_typed_by_train_params(copy_example) -> None:
    root = copy_example("demand_forecast", edit=lambda s: s.update(params={"alpha": "strong"}))
    with pytest.raises(SpecError, match=r"model.yaml: params.alpha: .*number.*'strong'"):
        load_project(root).params()


def test_unknown_param_is_rejected(copy_example) -> None:
    root = copy_example("demand_forecast", edit=lambda s: s.update(params={"alhpa": 2}))
    with pytest.raises(
        SpecError, match=r"params.alhpa is not a field of train.Params \(known: alpha\)"
    ):
        load_project(root).params()


def test_two_copies_of_a_project_load_apart(copy_example) -> None:
    first = load_project(copy_example("demand_forecast", name="alpha_model"))
    second = load_project(copy_example("demand_forecast", name="beta_model"))
    assert first.module("train") is not second.module("train")
    assert first.module("train").__file__.startswith(str(first.root))


def test_discover_reports_broken_projects_without_failing(copy_example, workdir: Path) -> None:
    copy_example("demand_forecast")
    copy_example("breast_cancer", name="broken", edit=lambda s: s.update(task="ranking"))
    projects, broken = discover_projects(workdir / "model_projects")
    assert [p.name for p in projects] == ["demand_forecast"]
    assert "task: input should be 'regression' or 'classification'" in str(broken["broken"])
