"""Commands about a model project's files: `new` (from templates) and `check` (its tests)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from typing import Any

import click

from modelfactory.cli.common import friendly
from modelfactory.project.loader import find_repo_root, projects_dir
from modelfactory.project.metrics import CATALOGUE as METRIC_NAMES
from modelfactory.project.scaffold import ProjectAnswers, check_name, create_project

__all__ = ["check", "new"]


@click.command()
@click.argument("name")
@click.option("--owner", help="Email or team:<name>, shown on every asset.")
@click.option("--description", help="One line: what the model predicts.")
@click.option("--task", type=click.Choice(["regression", "classification"]))
@click.option("--target", help="The column to predict.")
@click.option("--metric", type=click.Choice(sorted(METRIC_NAMES)), help="Validation metric.")
@click.option("--direction", type=click.Choice(["maximize", "minimize"]))
@click.option("--policy", type=click.Choice(["auto", "manual"]), help="Who promotes.")
@click.option("--min-improvement", type=float, help="Relative gain over the champion.")
@click.option("--test-size", type=float, help="Holdout share (latest days).")
@click.option("--cpus", type=float, help="CPUs per run.")
@click.option("--memory", help="Memory per run, e.g. 2Gi.")
@click.option("--timeout", help="Max runtime per run, e.g. 30m.")
@click.option("--retrain", help="Retrain cron (UTC); 'none' for no schedule.")
@click.option("--predict", help="Batch-predict cron (UTC); 'none' for no schedule.")
@click.option("--no-input", is_flag=True, help="Ask nothing: flags, else the defaults.")
@friendly
def new(name: str, no_input: bool, **given: Any) -> None:
    """Create model_projects/NAME from templates; the model_projects location loads it.

    Asks for what is not given as a flag (nothing with --no-input). The project trains at
    once on a sample its simulate.py generates; replace features.load_raw with real data.
    """

    repo = find_repo_root()
    if not (repo / "workspace.yaml").is_file():
        raise click.ClickException(
            "no workspace.yaml here or above: run `modelfactory new` in a Model Factory "
            "repository (its model_projects/ is where the project goes)"
        )
    check_name(name, repo / "model_projects")  # before any question: nothing to undo
    answers = ProjectAnswers(name=name).completed()
    for question, text in _NEW_QUESTIONS.items():
        value = given.get(question)
        if value is None and not no_input:
            default = _default_answer(answers, question)
            value = click.prompt(text, default=default, type=_NEW_TYPES.get(question))
        if value is not None:
            answers = replace(answers, **{question: _cron_or_none(question, value)})
        if question == "task":  # description, target and metric defaults follow the task
            reset = dict.fromkeys(("description", "target", "metric", "direction"), "")
            answers = replace(answers, **reset).completed()
        elif question == "metric":
            answers = replace(answers, direction="").completed()
    folder = create_project(answers, repo)
    shown = folder.relative_to(repo)
    click.secho(f"created {shown}/: the model_projects code location loads it", fg="green")
    click.echo(
        f"next: `modelfactory check {name}` (its tests), `modelfactory train {name}`, "
        f"then make {shown}/features.py:load_raw read your data"
    )


_NEW_QUESTIONS = {  # in asking order: the task sets the defaults of those after it
    "task": "Task",
    "owner": "Owner (email or team:<name>)",
    "description": "Description",
    "target": "Target column",
    "metric": "Validation metric",
    "direction": "Maximize or minimize it",
    "policy": "Promotion policy",
    "min_improvement": "Minimum improvement over production (relative)",
    "test_size": "Test share",
    "cpus": "CPUs per run",
    "memory": "Memory per run",
    "timeout": "Max runtime per run",
    "retrain": "Retrain schedule (cron, or none)",
    "predict": "Batch-predict schedule (cron, or none)",
}


_NEW_TYPES: dict[str, Any] = {
    "task": click.Choice(["regression", "classification"]),
    "metric": click.Choice(sorted(METRIC_NAMES)),
    "direction": click.Choice(["maximize", "minimize"]),
    "policy": click.Choice(["auto", "manual"]),
    "min_improvement": float,
    "test_size": float,
    "cpus": float,
}


def _default_answer(answers: Any, question: str) -> Any:
    """The prompt's default: the answer so far, with no schedule shown as `none`."""
    value = getattr(answers, question)
    return "none" if value is None else value


def _cron_or_none(question: str, value: Any) -> Any:
    """A schedule answered `none` (or left empty) means no schedule: None, not a cron."""
    if question in {"retrain", "predict"} and str(value).strip().lower() in {"", "none"}:
        return None
    return value


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("model")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--contracts-only", is_flag=True, help="Skip the project's own tests/ folder.")
@click.pass_context
def check(
    ctx: click.Context, model: str, pytest_args: tuple[str, ...], contracts_only: bool
) -> None:
    """Run MODEL's contract tests and its own tests/ with pytest; exits with pytest's code.

    Other arguments go to pytest: `modelfactory check demand_forecast -x -k schema`.
    """
    root = projects_dir() / model
    if not (root / "model.yaml").is_file():
        known = sorted(p.parent.name for p in projects_dir().glob("*/model.yaml"))
        raise click.ClickException(
            f"no model project {model!r} in {projects_dir()} (known: {', '.join(known) or 'none'})"
        )
    target = root / "model.yaml" if contracts_only else root
    args = [str(target), "-q", "-ra", "--tb=short", "-p", "modelfactory.testing", *pytest_args]
    # A fresh interpreter: pytest imports the project's modules as they are on disk now.
    ctx.exit(subprocess.run([sys.executable, "-m", "pytest", *args], check=False).returncode)
