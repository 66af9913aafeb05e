"""The root `modelfactory` group: every command group's commands, registered in one place."""

from __future__ import annotations

import os

import click

from modelfactory.cli.dev import demo, dev
from modelfactory.cli.project import check, new
from modelfactory.cli.registry import approve, rollback
from modelfactory.cli.reports import diff, history, reproduce, status
from modelfactory.cli.serve import serve
from modelfactory.cli.train import predict, seed, train

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Model Factory: plain model files in, a production ML system on Dagster out."""
    # MLflow draws a progress bar for every artifact it fetches, however small, on stdout.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


# `--help` lists them by name, whatever the order here.
for command in (
    *(new, check),
    *(seed, train, predict),
    *(status, history, reproduce, diff),
    *(rollback, approve),
    *(serve, dev, demo),
):
    main.add_command(command)
