"""The workspace: each model is its own code location, and a broken one harms no other.

Validated by Dagster's own loader (`dagster definitions validate`), in subprocesses, exactly as
`dagster dev` loads the locations.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


def test_repository_workspace_loads_every_model() -> None:
    result = validate(REPO / "workspace.yaml")
    assert result.returncode == 0, result.stdout[-3000:]
    locations = [
        e["python_file"]["location_name"]
        for e in yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    ]
    assert sorted(locations) == sorted(
        p.parent.name for p in REPO.glob("model_projects/*/model.yaml")
    )
    for location in locations:
        assert f"Validation successful for code location {location}" in result.stdout


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
    (workdir / "workspace.yaml").write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_file": {
                            "relative_path": f"model_projects/{n}/definitions.py",
                            "location_name": n,
                            "working_directory": ".",
                        }
                    }
                    for n in ("demand_forecast", "broken", "breast_cancer")
                ]
            }
        )
    )  # fmt: skip

    result = validate(workdir / "workspace.yaml")

    assert result.returncode == 1
    assert "Validation successful for code location demand_forecast" in result.stdout
    assert "Validation successful for code location breast_cancer" in result.stdout
    assert "Validation failed for code location broken" in result.stdout
    assert (
        "model_projects/broken/model.yaml: metric.direction: input should be 'maximize' or "
        "'minimize', got 'up'"
    ) in result.stdout
