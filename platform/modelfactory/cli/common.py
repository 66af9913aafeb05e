"""What the command groups share: friendly errors, choosing projects, the units a command
is about (a model, or its segments), and how a failed run's steps read."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

import click

from modelfactory.errors import ModelFactoryError
from modelfactory.project.loader import (
    ModelProject,
    discover_projects,
    load_project,
    projects_dir,
)
from modelfactory.project.segments import segment_model
from modelfactory.stores.instance import local_instance

if TYPE_CHECKING:
    from modelfactory.orchestration.runs import TrainOutcome

__all__ = ["describe_failures", "friendly", "run_units", "select_projects", "unit_of"]


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Our own errors print as one clear message, never as a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ModelFactoryError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def select_projects(names: tuple[str, ...]) -> list[ModelProject]:
    """The named projects, or every project; broken ones are reported, not fatal."""
    if names:
        return [load_project(projects_dir() / name) for name in names]
    projects, broken = discover_projects()
    for name, error in broken.items():
        click.secho(f"skipping {name}: {error}", fg="yellow", err=True)
    return projects


def run_units(project: ModelProject, segments: tuple[str, ...], instance: Any) -> list[str | None]:
    """What a train or predict command runs: the segments asked for or all of them (new
    discovered ones found first), or [None] for an unsegmented model."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import resolve_segments

    if project.spec.segments is None:
        resolve_segments(project, list(segments), instance)  # refuses --segment
        return [None]
    return resolve_segments(project, list(segments), instance)


def describe_failures(outcome: TrainOutcome) -> str:
    """`model_card failed: <first line of its error>`, for each failed step."""
    return (
        "; ".join(
            f"{step} failed: {error.splitlines()[0]}"
            for step, error in outcome.failed_steps.items()
        )
        or f"run {outcome.run_id} failed"
    )


def unit_of(project: ModelProject, segment: str | None) -> str:
    """The registry name a per-version command is about: the model, or one of its segments
    (which a segmented model must name)."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import resolve_segments

    if project.spec.segments is not None and segment is None:
        raise click.ClickException(
            f"{project.name} has a model per segment: name one with --segment"
        )
    if segment is not None:
        resolve_segments(project, [segment], local_instance())  # refuses an unknown one
    return segment_model(project.name, segment)
