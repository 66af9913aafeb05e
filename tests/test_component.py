"""Model Factory as a Dagster Component, in a `dg` project made by `create-dagster`.

The acceptance test of the component (issue 18): a new dg project adds a model through
`dg scaffold defs modelfactory.ModelProject churn`, `dg check defs` passes and `dg list defs`
shows the model's assets; a broken model.yaml makes `dg check defs` fail naming the file and
the field. Everything runs offline: `create-dagster --no-uv-sync` (no `uv sync`), the dg of
this venv, its PyPI update check off. In process: the components' definitions are the
fleet's (fleet_definitions), and several components make one location.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from dagster import Definitions, build_defs_for_component

from modelfactory import ModelProject, ModelProjects, fleet_definitions, load_defs_folder
from modelfactory.errors import ProjectError
from modelfactory.orchestration.component import VALIDATION_ENV

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STEPS = {"raw", "features", "split", "candidate", "evaluation", "champion", "endpoint"}


def _tools() -> tuple[Path, Path]:
    """This venv's create-dagster and dg, with modelfactory registered for dg, or a skip
    saying how (a fail under CI=true: a skipped acceptance test there could never fail)."""
    create, dg = BIN / "create-dagster", BIN / "dg"
    registered = any(
        e.value == "modelfactory" for e in entry_points(group="dagster_dg_cli.registry_modules")
    )
    reason = None
    if not (create.exists() and dg.exists()):
        reason = f"no create-dagster / dg in {BIN}: `make install` (the dev extra has them)"
    elif not registered:
        reason = "modelfactory's dg entry point is not in this venv's metadata: `make install`"
    if reason and os.environ.get("CI") == "true":
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)
    return create, dg


@dataclass(frozen=True)
class DgProject:
    """A dg project made by create-dagster, and the environment its dg commands run in."""

    root: Path
    dg: Path
    env: dict[str, str]

    @property
    def churn(self) -> Path:
        return self.root / "src" / "shop" / "defs" / "churn"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(self.dg), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and done.returncode != 0:
            pytest.fail(f"dg {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> DgProject:
    """A new dg project `shop` (create-dagster) with the model `churn` scaffolded through the
    component, as the README tells a team to add one."""
    create, dg = _tools()
    where = tmp_path_factory.mktemp("dg")
    env = {
        **os.environ,
        "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0",  # no PyPI look-up for a newer create-dagster
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "MODELFACTORY_HOME": str(where / "home"),
        "NO_COLOR": "1",
        # what `uv sync` would install: the project's own package, importable from src/
        "PYTHONPATH": os.pathsep.join(
            [str(where / "shop" / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    env.pop(VALIDATION_ENV, None)
    made = subprocess.run(
        [str(create), "project", "--no-uv-sync", "shop"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    project = DgProject(where / "shop", dg, env)
    project.run("scaffold", "defs", "modelfactory.ModelProject", "churn")
    return project


@pytest.mark.slow
def test_dg_project_adds_a_model_through_the_component(shop: DgProject) -> None:
    assert (shop.churn / "defs.yaml").read_text().startswith("type: modelfactory.ModelProject")
    # the files `modelfactory new` writes, beside the defs.yaml, and the sample they train on
    assert {"model.yaml", "features.py", "train.py", "schemas.py", "simulate.py"} <= {
        p.name for p in shop.churn.iterdir()
    }
    assert list((Path(shop.env["MODELFACTORY_HOME"]) / "data" / "churn").glob("*.csv"))
    listed = shop.run("list", "components", "--json").stdout
    assert {"modelfactory.ModelProject", "modelfactory.ModelProjects"} <= {
        c["key"] for c in json.loads(listed)["items"]
    }
    checked = shop.run("check", "defs")
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    defs = json.loads(shop.run("list", "defs", "--json").stdout)
    assert {f"churn/{step}" for step in STEPS} <= {a["asset_key"] for a in defs["assets"]}
    assert "churn_train" in {j["name"] for j in defs["jobs"]}


@pytest.mark.slow
def test_dg_check_defs_fails_on_a_broken_model_naming_file_and_field(shop: DgProject) -> None:
    spec = shop.churn / "model.yaml"
    good = spec.read_text()
    spec.write_text(good.replace("task: regression", "task: regresion"))
    try:
        checked = shop.run("check", "defs", check=False)
    finally:
        spec.write_text(good)
    out = checked.stdout + checked.stderr
    assert checked.returncode != 0, out
    assert "churn/model.yaml, field task:" in out, out
    assert "'regresion'" in out, out
    # outside validation it is the churn/project asset: test_strict_component_... below


def test_folder_component_defs_are_the_fleets(tmp_path: Path) -> None:
    """modelfactory.ModelProjects over the examples builds what fleet_definitions builds."""
    projects = tmp_path / "model_projects"
    for name in ("breast_cancer", "penguins"):
        shutil.copytree(
            REPO / "model_projects" / name,
            projects / name,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    component = build_defs_for_component(ModelProjects(folder=str(projects)))
    fleet = fleet_definitions(projects)
    assert _keys(component) == _keys(fleet)
    assert {f"{m}/{s}" for m in ("breast_cancer", "penguins") for s in STEPS} <= _keys(component)
    assert _names(component) == _names(fleet)


def test_this_repository_loads_through_its_defs_yaml() -> None:
    """model_projects/definitions.py loads defs.yaml's ModelProjects: the fleet, unchanged."""
    declared = (REPO / "model_projects" / "defs.yaml").read_text()
    assert "type: modelfactory.ModelProjects" in declared
    assert "strict: false" in declared  # a broken project never fails this location's load
    defs = load_defs_folder(REPO / "model_projects")
    fleet = fleet_definitions(REPO / "model_projects")
    assert _keys(defs) == _keys(fleet)
    assert _names(defs) == _names(fleet)


def test_components_of_one_tree_make_one_location(tmp_path: Path) -> None:
    """Two ModelProject defs.yaml and a ModelProjects one: one set of sensors over all."""
    defs = tmp_path / "defs"
    for name in ("breast_cancer", "penguins"):
        shutil.copytree(REPO / "model_projects" / name, defs / name)
        (defs / name / "defs.yaml").write_text("type: modelfactory.ModelProject\n")
    shutil.copytree(REPO / "model_projects" / "diabetes", defs / "team" / "diabetes")
    (defs / "team" / "defs.yaml").write_text(
        "type: modelfactory.ModelProjects\nattributes:\n  include: ['diab*']\n"
    )
    loaded = load_defs_folder(defs)
    assert {k.split("/")[0] for k in _keys(loaded)} == {"breast_cancer", "penguins", "diabetes"}
    sensors = [s.name for s in loaded.sensors or []]
    assert len(sensors) == len(set(sensors))  # no sensor twice, however many components


def test_strict_component_raises_file_field_and_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken project: the <model>/project asset by default, an error when validating
    (DAGSTER_IS_DEFS_VALIDATION_CLI) or strict; `strict: false` never fails."""
    root = tmp_path / "churn"
    shutil.copytree(REPO / "model_projects" / "penguins", root)
    spec = root / "model.yaml"
    spec.write_text(spec.read_text().replace("name: penguins", "name: churn") + "split: 3\n")
    monkeypatch.delenv(VALIDATION_ENV, raising=False)
    lenient = build_defs_for_component(ModelProject(folder=str(root)))
    assert _keys(lenient) == {"churn/project"}
    with pytest.raises(ProjectError, match=r"churn/model.yaml, field split"):
        build_defs_for_component(ModelProject(folder=str(root), strict=True))
    monkeypatch.setenv(VALIDATION_ENV, "1")
    with pytest.raises(ProjectError, match=r"field split"):
        build_defs_for_component(ModelProject(folder=str(root)))
    assert _keys(build_defs_for_component(ModelProject(folder=str(root), strict=False))) == {
        "churn/project"
    }


def _keys(defs: Definitions) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_all_asset_keys()}


def _names(defs: Definitions) -> dict[str, list[str]]:
    return {
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }
