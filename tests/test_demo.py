"""`modelfactory demo --drift`, run as a user runs it: the installed command, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelfactory.stores.notify import read_alerts

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
    copy_example("demand_forecast")  # as shipped: a champion per marketplace
    home = workdir / "demo-home"
    done = demo(workdir, "--drift", "--home", str(home))
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert "Traceback" not in out
    steps = [line for line in out.splitlines() if line[:2] in {"1.", "2.", "3.", "4.", "5."}]
    assert len(steps) == 5
    assert "the world changes in marketplace 'us' only" in out
    # Only the segment whose world changed is retrained, on the word of both sensors.
    assert "drift sensor: requested demand_forecast_train[us], " in out
    assert "live metric sensor: requested demand_forecast_train[us], " in out
    assert "demand_forecast_train[uk]" not in out and "demand_forecast_train[de]" not in out
    done_line = next(line for line in out.splitlines() if line.startswith("done: "))
    assert done_line.startswith(
        "done: demand_forecast.us v2 replaced v1; "
        "untouched: demand_forecast.uk v1, demand_forecast.de v1;"
    )
    alerts = read_alerts(home / "alerts.jsonl")
    assert {"drift_retrain", "live_metric_retrain", "promoted"} <= {a.event for a in alerts}
    assert {a.model for a in alerts if a.event.endswith("_retrain")} == {"demand_forecast.us"}
    promoted = [a.model for a in alerts if a.event == "promoted"]  # the first three, then us
    assert promoted == [f"demand_forecast.{s}" for s in ("uk", "de", "us", "us")]

    again = demo(workdir, "--drift", "--home", str(home))  # the demo's own home starts afresh
    assert again.returncode == 0, again.stdout
    assert "done: demand_forecast.us v2 replaced v1" in again.stdout


def test_a_segmented_demo_needs_a_simulator_that_changes_one_segment(
    copy_example, workdir: Path
) -> None:
    root = copy_example("demand_forecast")
    simulate = root / "simulate.py"
    simulate.write_text(simulate.read_text().replace("only: Sequence[str] | None = None,", ""))
    done = demo(workdir, "--drift", "--home", str(workdir / "demo-home"))
    assert done.returncode != 0
    assert "simulate.py: the drift demo needs simulate(only=...)" in done.stdout
    assert "Traceback" not in done.stdout


def test_the_demo_refuses_a_home_it_did_not_make(workdir: Path) -> None:
    home = workdir / "precious"
    home.mkdir()
    (home / "keep.txt").write_text("mine")
    done = demo(workdir, "--drift", "--home", str(home))
    assert done.returncode == 2 and "was not made by the demo" in done.stdout
    assert (home / "keep.txt").read_text() == "mine"
    assert "choose a story" in demo(workdir).stdout
