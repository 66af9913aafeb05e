"""The workspace: every model project in one code location, and a broken one harms no other.

Validated by Dagster's own loader (`dagster definitions validate`, `dagster asset list`), in
subprocesses, exactly as `dagster dev` loads the location.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelfactory.orchestration.fleet import load_fleet

REPO = Path(__file__).resolve().parents[1]
DAGSTER = [sys.executable, "-m", "dagster", "definitions", "validate"]


def validate(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DAGSTER, "-w", str(workspace)],
        cwd=workspace.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


def test_repository_workspace_is_one_location_holding_every_model() -> None:
    result = validate(REPO / "workspace.yaml")
    assert result.returncode == 0, result.stdout[-3000:]
    entries = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    assert [e["python_file"] for e in entries] == [
        {
            "relative_path": "model_projects/definitions.py",
            "location_name": "model_projects",
            "working_directory": ".",
        }
    ]
    assert "Validation successful for code location model_projects" in result.stdout
    projects, broken = load_fleet(REPO / "model_projects")
    assert not broken, [b.message for b in broken]
    assert sorted(p.name for p in projects) == sorted(
        p.parent.name for p in REPO.glob("model_projects/*/model.yaml")
    )


@pytest.mark.slow
def test_a_broken_model_does_not_take_the_others_down(workdir: Path) -> None:
    for name in ("demand_forecast", "breast_cancer"):
        shutil.copytree(REPO / "model_projects" / name, workdir / "model_projects" / name)
    broken = workdir / "model_projects" / "broken"
    shutil.copytree(REPO / "model_projects" / "demand_forecast", broken)
    spec = (broken / "model.yaml").read_text()
    (broken / "model.yaml").write_text(
        spec.replace("name: demand_forecast", "name: broken").replace(
            "direction: minimize", "direction: up"
        )
    )

    result = validate(workdir / "workspace.yaml")

    assert result.returncode == 0, result.stdout[-3000:]  # the location loads, broken and all
    assert "Validation successful for code location model_projects" in result.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "list", "-f", "model_projects/definitions.py"],
        cwd=workdir, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-3000:]
    assets = set(listed.stdout.split())
    assert {"demand_forecast/candidate", "breast_cancer/candidate", "broken/project"} <= assets
    assert not any(a.startswith("broken/") and a != "broken/project" for a in assets)
