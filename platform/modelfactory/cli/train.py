"""Commands that run a model's graph: `seed` (example data), `train` (raw through champion)
and `predict` (batch scores, by day where the model predicts daily)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from modelfactory.cli.common import describe_failures, friendly, run_units, select_projects
from modelfactory.project.loader import ModelProject, load_project, projects_dir
from modelfactory.project.segments import segment_model
from modelfactory.stores.home import local_home, model_registry
from modelfactory.stores.instance import local_instance

if TYPE_CHECKING:
    from modelfactory.orchestration.runs import TrainOutcome

__all__ = ["predict", "seed", "train"]


@click.command()
@click.argument("models", nargs=-1)
@friendly
def seed(models: tuple[str, ...]) -> None:
    """Write example data for projects with a simulate.py (once; existing data is kept)."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import seed_data

    for project in select_projects(models):
        wrote = seed_data(project)
        where = local_home().data(project.name)
        click.echo(f"{project.name}: {'seeded' if wrote else 'kept existing data in'} {where}")


@click.command()
@click.argument("models", nargs=-1)
@click.option(
    "--approve",
    is_flag=True,
    help=(
        "Retrain, and approve the new candidate unseen if it passes the gate (for scripts; "
        "policy manual needs an approval; under policy auto the gate alone decides and this "
        "changes nothing). To approve a candidate someone reviewed, use `modelfactory approve`."
    ),
)
@click.option(
    "--by",
    help="With --approve: who approves. [default: $MODELFACTORY_ACTOR, $USER, git user.email]",
)
@click.option("--if-no-champion", is_flag=True, help="Only train models that have no champion.")
@click.option(
    "--segment",
    "segments",
    multiple=True,
    help="Train only this segment of a segmented model (repeatable; default: every segment).",
)
@friendly
def train(
    models: tuple[str, ...],
    approve: bool,
    by: str | None,
    if_no_champion: bool,
    segments: tuple[str, ...],
) -> None:
    """Materialize MODELS (default: all): raw, features, split, candidate, evaluation, champion.

    A segmented model trains one run per segment; a segment that fails does not stop the others.
    With --approve the new candidate is approved in the same run, before anyone looked at it.
    """
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import seed_data, train

    if by and not approve:
        raise click.UsageError("--by names who approves: add --approve")
    projects = select_projects(models)
    instance = local_instance()
    registry = model_registry()
    failed = []
    for project in projects:
        seed_data(project)
        if segments and project.spec.segments is None and not models:
            click.echo(f"{project.name}: has no segments, skipping")
            continue
        units = run_units(project, segments, instance)
        if project.spec.segments is not None:
            click.echo(f"{project.name}: {len(units)} segment(s) by {project.spec.segments.by}")
        for number, segment in enumerate(units, start=1):
            label = f"{project.name}[{segment}]" if segment else project.name
            if if_no_champion and registry.champion(segment_model(project.name, segment)):
                click.echo(f"{label}: has a champion, skipping")
                continue
            progress = f" ({number}/{len(units)})" if segment else ""
            click.echo(f"{label}: training{progress} ...")
            outcome = train(
                project, approve=approve, approved_by=by, instance=instance, segment=segment
            )
            if not _report_training(outcome):
                stands = f" (promoted v{outcome.champion}: the promotion stands)"
                failed.append(outcome.label + (stands if outcome.promoted else ""))
    if failed:
        raise click.ClickException(f"training failed for {', '.join(failed)}")


@click.command()
@click.argument("model")
@click.option("--from", "start", help="First day to score (YYYY-MM-DD), for daily predictions.")
@click.option("--to", "end", help="Last day to score (YYYY-MM-DD); default: --from, or today.")
@click.option("--segment", "segments", multiple=True, help="Only this segment (repeatable).")
@friendly
def predict(model: str, start: str | None, end: str | None, segments: tuple[str, ...]) -> None:
    """Batch-score MODEL into <model>/predictions with its champion(s).

    With `predictions.daily_from` in model.yaml, one run per day from --from to --to (a
    backfill; default today) and per segment; a day that fails does not stop the others.
    """
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import score

    project = load_project(projects_dir() / model)
    instance = local_instance()
    days = _days(project, start, end)
    each = run_units(project, segments, instance)
    units = [(day, segment) for day in days for segment in each]
    failed = []
    for number, (day, segment) in enumerate(units, start=1):
        label = " ".join(str(part) for part in (day, segment) if part) or model
        outcome = score(project, day=day, segment=segment, instance=instance)
        if outcome.success:
            click.echo(
                f"[{number}/{len(units)}] {label}: {outcome.rows} rows scored by v{outcome.version}"
            )
        else:
            failed.append(label)
            click.secho(
                f"[{number}/{len(units)}] {label}: failed: {outcome.error}", fg="red", err=True
            )
    if failed:
        raise click.ClickException(f"scoring failed for {', '.join(failed)} (of {len(units)})")


def _days(project: ModelProject, start: str | None, end: str | None) -> list[Any]:
    """The days a predict command covers: [None] when predictions are not by day."""
    daily = project.spec.predictions
    if daily is None:
        if start or end:
            raise click.UsageError(
                f"{project.name}'s predictions are not by day (model.yaml has no "
                "predictions.daily_from): drop --from/--to"
            )
        return [None]
    try:
        first = date.fromisoformat(start) if start else None
        last = date.fromisoformat(end) if end else None
    except ValueError as exc:
        raise click.UsageError(f"--from/--to take YYYY-MM-DD dates ({exc})") from None
    today = datetime.now(UTC).date()
    first = first or last or today
    last = last or (first if start else today)
    if not daily.daily_from <= first <= last <= today:
        raise click.UsageError(
            f"days must run from {daily.daily_from} (predictions.daily_from) to today "
            f"({today}), first to last; got {first} .. {last}"
        )
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _report_training(outcome: TrainOutcome) -> bool:
    """Print one training run's outcome; True when it succeeded."""
    if outcome.success:
        mark = "promoted" if outcome.promoted else "champion unchanged"
        champion = f"v{outcome.champion}" if outcome.champion else "none yet"
        click.secho(
            f"{outcome.label}: {mark}; champion {champion} ({outcome.seconds:.1f} s)\n"
            f"  {outcome.decision}",
            fg="green" if outcome.promoted else None,
        )
        return True
    if outcome.promoted:  # the champion moved before a later step failed: say both
        click.secho(
            f"{outcome.label}: promoted v{outcome.champion}; then {describe_failures(outcome)}. "
            f"The promotion stands (run {outcome.run_id})",
            fg="red",
            err=True,
        )
        return False
    click.secho(f"{outcome.label}: run {outcome.run_id} failed", fg="red", err=True)
    for check, why in outcome.failed_checks.items():
        click.echo(f"  check {check} failed: {why}", err=True)
    for error in outcome.errors:
        click.echo(f"  {error.splitlines()[0]}", err=True)
    return False
