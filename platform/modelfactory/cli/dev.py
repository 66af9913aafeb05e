"""Commands for a person's own machine: `dev` (train what needs it, then the Dagster UI,
MLflow UI and endpoint under dev_stack's supervisor) and `demo` (a story, in a home of its own;
the story itself is demo.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from modelfactory.cli.common import friendly
from modelfactory.project.loader import find_repo_root, load_project, projects_dir
from modelfactory.stores.home import HOME_ENV, local_home
from modelfactory.stores.instance import prepare_dagster_home
from modelfactory.stores.urls import service_url_env

__all__ = ["DEV_APPROVER", "demo", "dev"]


DEV_APPROVER = "make dev"  # who approves the first champions of manual-policy models dev trains


@click.command()
@click.option(
    "--drift",
    "drift_story",
    is_flag=True,
    help="Serve, change the world, let the sensors retrain and promote a better model.",
)
@click.option("--model", default="demand_forecast", show_default=True)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the demo keeps its state. [default: .modelfactory/demo, started afresh]",
)
@click.option("--world-drift", default=0.2, show_default=True, help="Input shift (simulator).")
@click.option("--concept", default=0.3, show_default=True, help="Concept change (simulator).")
@click.option(
    "--segment",
    default=None,
    help="For a segmented model, the segment whose world changes. [default: the last one]",
)
@friendly
def demo(
    drift_story: bool,
    model: str,
    home: str | None,
    world_drift: float,
    concept: float,
    segment: str | None,
) -> None:
    """Tell a story on real parts, without the daemon (it plays the daemon's part).

    --drift: train and promote MODEL (each of its segments), serve it, send traffic and late
    labels, change the world with the simulator's knobs (in one segment), tick the drift and
    live-metric sensors, run the retrain they request, and show the new champion beating the
    old on the new data while the other segments keep theirs.
    """
    if not drift_story:
        raise click.UsageError("choose a story: `modelfactory demo --drift`")
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.cli.demo import run_drift_demo

    root = _demo_home(home)
    click.secho(f"demo state in {root} (the UI: MODELFACTORY_HOME={root} make dev)", fg="cyan")
    project = load_project(projects_dir() / model)
    outcome = run_drift_demo(
        project, echo=click.echo, drift=world_drift, concept=concept, segment=segment
    )
    verdicts = [
        f"{r.unit} v{r.new_champion} replaced v{r.first_champion}"
        if r.promoted
        else f"{r.unit} v{r.first_champion} stays champion"
        for r in outcome.retrains
    ]
    retrained = {r.unit for r in outcome.retrains}
    kept = [f"{unit} v{v}" for unit, v in outcome.champions.items() if unit not in retrained]
    if kept:
        verdicts.append(f"untouched: {', '.join(kept)}")
    click.secho(
        f"done: {'; '.join(verdicts)}; retrain requested by the "
        f"{' and '.join(outcome.requested_by)} sensor(s)",
        fg="green",
    )


def _demo_home(home: str | None) -> Path:
    """A home of the demo's own (never the one `make dev` uses), emptied if the demo made it."""
    root = Path(home) if home else local_home().root / "demo"
    marker = root / ".modelfactory-demo"
    if root.exists() and marker.exists():
        shutil.rmtree(root)
    elif root.exists() and any(root.iterdir()):
        raise click.UsageError(f"{root} exists and was not made by the demo; pick another --home")
    root.mkdir(parents=True, exist_ok=True)
    marker.touch()
    os.environ[HOME_ENV] = str(root.resolve())
    os.environ["DAGSTER_HOME"] = str(root.resolve() / "dagster")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return root.resolve()


@click.command()
@click.option("--port", default=3000, show_default=True, help="Dagster UI port.")
@click.option("--mlflow-port", default=5000, show_default=True, help="MLflow UI port.")
@click.option("--endpoint-port", default=8000, show_default=True, help="Prediction endpoint port.")
@click.option("--no-train", is_flag=True, help="Skip training models that have no champion.")
@friendly
def dev(port: int, mlflow_port: int, endpoint_port: int, no_train: bool) -> None:
    """Train what has no champion yet, then run the Dagster UI + daemon, MLflow UI and endpoint.

    Every link the platform writes (run metadata, model cards, alerts) points at these ports;
    MODELFACTORY_DAGSTER_URL, MODELFACTORY_MLFLOW_UI or MODELFACTORY_ENDPOINT_URL, if set,
    win (a proxy, a forwarded port).
    """

    prepare_dagster_home()
    home = local_home().ensure()
    ports = {"dagster": port, "mlflow": mlflow_port, "endpoint": endpoint_port}
    os.environ.update({"MODELFACTORY_HOME": str(home.root), **service_url_env(ports)})
    if not no_train:
        # In a child process: this one would otherwise keep dagster, mlflow and scikit-learn
        # imported for as long as the UIs run.
        command = [sys.executable, "-m", "modelfactory", "train", "--approve", "--if-no-champion"]
        command += ["--by", DEV_APPROVER]  # policy manual: approved by `make dev`; auto: the gate
        if subprocess.run(command, check=False).returncode != 0:
            raise click.ClickException("training failed (above); fix it or pass --no-train")
    click.secho(
        f"Dagster UI: http://localhost:{port}   MLflow UI: http://localhost:{mlflow_port}   "
        f"endpoint: http://localhost:{endpoint_port}/docs   (Ctrl-C stops all three)",
        fg="green",
    )
    stack = [sys.executable, "-m", "modelfactory.cli.dev_stack", "--port", str(port)]
    stack += ["--mlflow-port", str(mlflow_port), "--endpoint-port", str(endpoint_port)]
    stack += ["--workspace", str(find_repo_root() / "workspace.yaml")]
    stack += ["--tracking-uri", home.tracking_uri, "--artifact-root", str(home.artifact_root)]
    sys.stdout.flush()
    sys.stderr.flush()
    # The supervisor (dev_stack) imports only the standard library: replacing this process,
    # which has dagster imported, keeps what stays resident small and the pid the same.
    os.execv(sys.executable, stack)
