"""Shared fixtures: every test gets its own MODELFACTORY_HOME, and copies of model projects.

Nothing is mocked: runs go to a real Dagster instance, models to a real MLflow registry on
sqlite and DataFrames to a real DuckDB file, all inside the test's temporary home.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from modelfactory.serving.server import BackgroundServer as LiveServer
from modelfactory.serving.server import free_port

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "model_projects"


@pytest.fixture(autouse=True)
def mf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated MODELFACTORY_HOME (and DAGSTER_HOME inside it) for each test."""
    home = tmp_path / "mfhome"
    monkeypatch.setenv("MODELFACTORY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir(parents=True)
    return home


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch repository (workspace.yaml + model_projects/ as one location) that is the
    working directory."""
    root = tmp_path / "repo"
    (root / "model_projects").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", root / "dagster.yaml")
    shutil.copy(REPO / "workspace.yaml", root / "workspace.yaml")  # the one fleet location
    shutil.copy(EXAMPLES / "definitions.py", root / "model_projects" / "definitions.py")
    shutil.copy(EXAMPLES / "defs.yaml", root / "model_projects" / "defs.yaml")  # its component
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def copy_example(workdir: Path) -> Callable[..., Path]:
    """Copy an example project into the scratch repo, optionally renamed and edited.

    `edit` receives the parsed model.yaml as a dict and changes it in place.
    `segments=False` makes the copy one model for all its segments (demand_forecast's
    marketplaces): for tests of what a model does, rather than of what segments add.
    """

    def copy(
        example: str,
        name: str | None = None,
        edit: Callable[[dict], None] | None = None,
        *,
        segments: bool = True,
    ) -> Path:
        return copy_project(workdir, example, name or example, edit, segments=segments)

    return copy


def copy_project(
    repo: Path,
    example: str,
    name: str,
    edit: Callable[[dict], None] | None = None,
    *,
    segments: bool = True,
) -> Path:
    """What copy_example does, for module-scoped state too: `example` copied into `repo`'s
    model_projects/ as `name`, its model.yaml edited."""
    target = repo / "model_projects" / name
    shutil.copytree(
        EXAMPLES / example, target, ignore=shutil.ignore_patterns("tests", "__pycache__")
    )
    spec = yaml.safe_load((target / "model.yaml").read_text())
    spec["name"] = name
    if not segments:
        spec.pop("segments", None)
    if edit:
        edit(spec)
    (target / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return target


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    """Poll `condition` until it returns something truthy (returned), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def edit_spec(project: Path, edit: Callable[[dict], None]) -> None:
    """Change a copied project's model.yaml, as a data scientist would between runs."""
    spec = yaml.safe_load((project / "model.yaml").read_text())
    edit(spec)
    (project / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def train_with(root: Path, alpha: float):
    """Set params.alpha in a copied project and train it once (the whole model)."""
    from dagster import DagsterInstance

    from modelfactory.orchestration.runs import seed_data, train
    from modelfactory.project.loader import load_project

    edit_spec(root, lambda spec: spec["params"].update(alpha=alpha))
    project = load_project(root)
    seed_data(project)
    outcome = train(project, instance=DagsterInstance.get())
    assert outcome.success, outcome.errors
    return outcome


__all__ = ["LiveServer", "edit_spec", "free_port", "train_with"]
