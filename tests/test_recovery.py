"""Parameter recovery is a real test: it passes on the example and fails on broken training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RECOVERY = "test_training_recovers_the_simulated_coefficients"


def run_recovery(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", RECOVERY,
         str(project / "tests")],
        cwd=project.parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("bug", "broken"),
    [
        ("labels shuffled", "return model.fit(X, y.sample(frac=1.0, random_state=0).to_numpy())"),
        ("heavy shrinkage", "model.set_params(ridge__alpha=1e5)\n    return model.fit(X, y)"),
    ],
)
def test_recovery_fails_when_training_is_broken(copy_example, bug: str, broken: str) -> None:
    project = copy_example("demand_forecast")
    shutil_copy_tests(project)
    assert run_recovery(project).returncode == 0  # the intact copy recovers the truth
    train = project / "train.py"
    source = train.read_text()
    assert "    return model.fit(X, y)" in source
    train.write_text(source.replace("    return model.fit(X, y)", f"    {broken}"))
    failed = run_recovery(project)
    assert failed.returncode == 1, (bug, failed.stdout)
    assert f"test_demand_forecast.py::{RECOVERY}" in failed.stdout
    assert "±" in failed.stdout  # a coefficient outside its tolerance, not a crash


def shutil_copy_tests(project: Path) -> None:
    """copy_example leaves the example's tests behind; recovery lives there."""
    import shutil

    from conftest import EXAMPLES

    shutil.copytree(EXAMPLES / "demand_forecast" / "tests", project / "tests")
