"""`modelfactory demo --drift`, run as a user runs it: the installed command, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelfactory.notify import read_alerts

MODELFACTORY = Path(sys.executable).with_name("modelfactory")


def demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MODELFACTORY), "demo", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_the_drift_story_retrains_and_promotes_a_better_model(copy_example, workdir: Path) -> None:
    copy_example("demand_forecast")
    home = workdir / "demo-home"
    done = demo(workdir, "--drift", "--home", str(home))
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert "Traceback" not in out
    steps = [line for line in out.splitlines() if line[:2] in {"1.", "2.", "3.", "4.", "5."}]
    assert len(steps) == 5
    assert "drift sensor: requested demand_forecast_train" in out
    assert "live metric sensor: requested demand_forecast_train" in out
    assert "done: v2 replaced v1" in out
    events = {alert.event for alert in read_alerts(home / "alerts.jsonl")}
    assert {"drift_retrain", "live_metric_retrain", "promoted"} <= events

    again = demo(workdir, "--drift", "--home", str(home))  # the demo's own home starts afresh
    assert again.returncode == 0 and "done: v2 replaced v1" in again.stdout, again.stdout


def test_the_demo_refuses_a_home_it_did_not_make(workdir: Path) -> None:
    home = workdir / "precious"
    home.mkdir()
    (home / "keep.txt").write_text("mine")
    done = demo(workdir, "--drift", "--home", str(home))
    assert done.returncode == 2 and "was not made by the demo" in done.stdout
    assert (home / "keep.txt").read_text() == "mine"
    assert "choose a story" in demo(workdir).stdout
