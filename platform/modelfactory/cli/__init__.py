"""`modelfactory`: the command line. Thin: each command parses, calls one module, prints.

modelfactory new         a new model project from templates, in model_projects/
modelfactory check       a model's contract tests and its own tests (pytest), for the inner loop
modelfactory dev         train what has no champion yet, then the Dagster UI, MLflow UI, endpoint
modelfactory serve       the prediction endpoint for every model (canary-aware)
modelfactory seed        write the example data of projects that have a simulator
modelfactory train       materialize a model's graph, raw through champion
modelfactory status      champion, metric and last verdict of every model
modelfactory approve     promote the evaluated candidate a person reviewed (policy manual)
modelfactory rollback    put the previous champion back
modelfactory history     the audit trail of a model; --at: which version served then, and why
modelfactory reproduce   retrain a version from its data snapshot and params; does it match?
modelfactory diff        why a model changed between two versions, in one screen
modelfactory demo        a story told step by step: `--drift` shows monitoring retrain a model
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelfactory.errors import ModelFactoryError
from modelfactory.project.loader import (
    ModelProject,
    discover_projects,
    find_repo_root,
    load_project,
    projects_dir,
)
from modelfactory.project.metrics import CATALOGUE as METRIC_NAMES
from modelfactory.project.scaffold import ProjectAnswers, check_name, create_project
from modelfactory.project.segments import cli_args, segment_model
from modelfactory.serving import create_app
from modelfactory.stores.home import HOME_ENV, audit_log, local_home, model_registry, rollout_store
from modelfactory.stores.instance import local_instance, prepare_dagster_home, record_alias_move
from modelfactory.stores.profile import current_profile
from modelfactory.stores.urls import dagster_run_url, service_url_env

if TYPE_CHECKING:
    from modelfactory.orchestration.runs import TrainOutcome

__all__ = ["main"]


DEV_APPROVER = "make dev"  # who approves the first champions of manual-policy models dev trains


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Our own errors print as one clear message, never as a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ModelFactoryError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Model Factory: plain model files in, a production ML system on Dagster out."""
    # MLflow draws a progress bar for every artifact it fetches, however small, on stdout.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _select(names: tuple[str, ...]) -> list[ModelProject]:
    """The named projects, or every project; broken ones are reported, not fatal."""
    if names:
        return [load_project(projects_dir() / name) for name in names]
    projects, broken = discover_projects()
    for name, error in broken.items():
        click.secho(f"skipping {name}: {error}", fg="yellow", err=True)
    return projects


@main.command()
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
@_friendly
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
    value = getattr(answers, question)
    return "none" if value is None else value


def _cron_or_none(question: str, value: Any) -> Any:
    if question in {"retrain", "predict"} and str(value).strip().lower() in {"", "none"}:
        return None
    return value


@main.command()
@click.argument("models", nargs=-1)
@_friendly
def seed(models: tuple[str, ...]) -> None:
    """Write example data for projects with a simulate.py (once; existing data is kept)."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import seed_data

    for project in _select(models):
        wrote = seed_data(project)
        where = local_home().data(project.name)
        click.echo(f"{project.name}: {'seeded' if wrote else 'kept existing data in'} {where}")


@main.command()
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
@_friendly
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
    projects = _select(models)
    instance = local_instance()
    registry = model_registry()
    failed = []
    for project in projects:
        seed_data(project)
        if segments and project.spec.segments is None and not models:
            click.echo(f"{project.name}: has no segments, skipping")
            continue
        units = _units(project, segments, instance)
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


def _units(project: ModelProject, segments: tuple[str, ...], instance: Any) -> list[str | None]:
    """What a train or predict command runs: the segments asked for or all of them (new
    discovered ones found first), or [None] for an unsegmented model."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import resolve_segments

    if project.spec.segments is None:
        resolve_segments(project, list(segments), instance)  # refuses --segment
        return [None]
    return resolve_segments(project, list(segments), instance)


@main.command()
@click.argument("model")
@click.option("--from", "start", help="First day to score (YYYY-MM-DD), for daily predictions.")
@click.option("--to", "end", help="Last day to score (YYYY-MM-DD); default: --from, or today.")
@click.option("--segment", "segments", multiple=True, help="Only this segment (repeatable).")
@_friendly
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
    each = _units(project, segments, instance)
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
    from datetime import UTC, date, datetime, timedelta

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
            f"{outcome.label}: promoted v{outcome.champion}; then {_failures(outcome)}. "
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


def _failures(outcome: TrainOutcome) -> str:
    """`model_card failed: <first line of its error>`, for each failed step."""
    return (
        "; ".join(
            f"{step} failed: {error.splitlines()[0]}"
            for step, error in outcome.failed_steps.items()
        )
        or f"run {outcome.run_id} failed"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_friendly
def status(as_json: bool) -> None:
    """For each model: champion version and metric, when and why promoted, last verdict;
    then a leaderboard of every champion's standard holdout metrics side by side."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import segments_now
    from modelfactory.reports.status import leaderboard, model_status
    from modelfactory.stores.audit import by_whom

    projects, broken = discover_projects()
    registry, rollouts = model_registry(), rollout_store()
    rows = [
        model_status(project, registry, rollouts, segment)
        for project in projects
        for segment in segments_now(project)
    ]
    if as_json:
        click.echo(
            json.dumps({"models": rows, "broken": {k: str(v) for k, v in broken.items()}}, indent=2)
        )
        return
    for row in rows:
        if row["champion"] is None:
            click.echo(f"{row['label']}: no champion yet (last candidate: {row['last_verdict']})")
            continue
        since = (
            f" since {row['promoted_at']} {by_whom(row['promoted_by'])}\n  why: {row['why']}"
            if row["promoted_at"]
            else " (its move is not on record: the alias was set outside Model Factory)"
        )
        click.echo(
            f"{row['label']}: champion v{row['champion']} "
            f"{row['metric']}={_metric(row['champion_metric'])}{since}\n"
            f"  last candidate v{row['last_candidate']}: {row['last_verdict']}"
        )
        if row["rollout"]:
            click.echo(f"  endpoint rollout: {row['rollout']} ({row['rollout_reason']})")
    if any(row["champion"] for row in rows):
        click.echo("\nChampions on their holdout (* the metric each model's gate uses):\n")
        click.echo(leaderboard(rows))
    for name, error in broken.items():
        click.secho(f"{name}: broken: {error}", fg="red")


def _metric(value: float | None) -> str:
    """A holdout metric for status; `?` for a version logged without it."""
    return "?" if value is None else f"{value:.4g}"


@main.command()
@click.argument("model")
@click.option("--segment", help="Only this segment of a segmented model (default: each one).")
@click.option(
    "--at",
    "moment",
    help="Which version was the champion then, and why: YYYY-MM-DD (that day's end, UTC) "
    "or an ISO time.",
)
@_friendly
def history(model: str, segment: str | None, moment: str | None) -> None:
    """MODEL's audit trail: every training run, evaluation, promotion, rollback and alert,
    oldest first; or, with --at, the champion at that moment and why."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import resolve_segments, segments_now

    project = load_project(projects_dir() / model)
    if segment is not None:
        resolve_segments(project, [segment], local_instance())  # refuses an unknown one
    at = _moment(moment) if moment else None
    audit = audit_log()
    for each in [segment] if segment else segments_now(project):
        unit = segment_model(model, each)
        if at is not None:
            click.echo(_serving_at(audit, unit, at))
            continue
        events = audit.timeline(unit)
        click.secho(f"{unit}: {len(events)} event(s)", bold=True)
        for event in events:
            click.echo(f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.text}")


@main.command()
@click.argument("model")
@click.argument("version")
@click.option("--segment", help="The segment whose version it is, for a segmented model.")
@click.option(
    "--tolerance",
    default=0.001,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Relative difference of the holdout metric still counted as the same.",
)
@_friendly
def reproduce(model: str, version: str, segment: str | None, tolerance: float) -> None:
    """Retrain MODEL's VERSION from its recorded data snapshot and params, and report whether
    its holdout metric matches the recorded one (exit 1 when it does not)."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.reports.reproduce import reproduce as rebuild

    project = load_project(projects_dir() / model)
    unit = _unit(project, segment)
    click.echo(f"{unit} v{version}: retraining on its snapshot ...")
    result = rebuild(
        project,
        unit,
        version.removeprefix("v"),
        registry=model_registry(),
        audit=audit_log(),
        tolerance=tolerance,
    )
    click.secho(result.describe(), fg="green" if result.matches else "red")
    if not result.matches:
        raise SystemExit(1)


@main.command()
@click.argument("model")
@click.argument("version_a")
@click.argument("version_b")
@click.option("--segment", help="The segment whose versions they are, for a segmented model.")
@_friendly
def diff(model: str, version_a: str, version_b: str, segment: str | None) -> None:
    """Why MODEL changed from VERSION_A to VERSION_B: metrics overall and per slice, data
    (rows, time range, schema, per-feature shift), code, params and environment."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.reports.version_diff import diff_versions

    project = load_project(projects_dir() / model)
    unit = _unit(project, segment)
    found = diff_versions(
        project,
        unit,
        version_a.removeprefix("v"),
        version_b.removeprefix("v"),
        registry=model_registry(),
        audit=audit_log(),
    )
    click.echo(found.render())


def _unit(project: ModelProject, segment: str | None) -> str:
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


def _moment(text: str) -> Any:
    """--at as an aware UTC time; a bare date means the end of that day."""
    import re
    from datetime import UTC, datetime, time

    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(datetime.fromisoformat(text).date(), time.max, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or len(text) < 11:  # 20260501 parses, as the day's start: refuse it
        raise click.BadParameter(
            f"{text!r}: give YYYY-MM-DD or an ISO time (2026-05-01T12:00, +02:00 or Z)",
            param_hint="--at",
        )
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _serving_at(audit: Any, unit: str, at: Any) -> str:
    """The audit trail's answer; for a time before the trail began, the registry's own
    record of champion moves (to the second) answers instead."""
    from datetime import UTC, datetime

    when = f"{at:%Y-%m-%d %H:%M:%S} UTC"
    move = audit.serving_at(unit, at)
    if move is None:
        earlier = [m for m in model_registry().history(unit) if datetime.fromisoformat(m.at) <= at]
        if earlier:
            last = earlier[-1]
            since = f"{datetime.fromisoformat(last.at).astimezone(UTC):%Y-%m-%d %H:%M:%S}"
            return (
                f"{unit} at {when}: v{last.to_version} was the champion (from the registry; "
                f"before the audit trail began)\n  since {since}: {last.event} by "
                f"{last.actor}: {last.reason}"
            )
        first = audit.first_move(unit)
        later = f"; the first, v{first.version}, came {first.at:%Y-%m-%d %H:%M:%S}" if first else ""
        return f"{unit} at {when}: no champion yet{later}"
    since = f"{move.at:%Y-%m-%d %H:%M:%S}"
    return f"{unit} at {when}: v{move.version} was the champion\n  since {since}: {move.text}"


@main.command()
@click.argument("model")
@click.option("--reason", default="manual rollback", show_default=True)
@click.option("--segment", help="The segment to roll back, for a segmented model.")
@_friendly
def rollback(model: str, reason: str, segment: str | None) -> None:
    """Put back the champion that MODEL's (or one segment's) current champion replaced."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import refresh_card
    from modelfactory.stores.audit import actor

    project = load_project(projects_dir() / model)
    unit = _unit(project, segment)
    move = model_registry().rollback(unit, actor=actor(), reason=reason)
    cancelled = rollout_store().cancel_active(unit, reason=f"rolled back by {move.actor}")
    record_alias_move(move)
    click.echo(f"{unit}: champion v{move.from_version} -> v{move.to_version} ({reason})")
    if cancelled is not None:
        click.echo(f"  cancelled the rollout {cancelled.describe()}")
    try:  # the rollback is done; a card that lags behind it must not read as its failure
        errors = refresh_card(project, segment)
    except Exception as exc:
        errors = [f"{type(exc).__name__}: {exc}"]
    if errors:
        click.secho(f"  the model card was not refreshed: {errors[0].splitlines()[0]}", fg="yellow")
    else:
        click.echo(f"  model card refreshed for v{move.to_version}")


@main.command()
@click.argument("model")
@click.option(
    "--version",
    help="The evaluated candidate to promote. [default: the latest evaluated, the challenger]",
)
@click.option("--segment", help="The segment whose candidate it is, for a segmented model.")
@click.option("--reason", default="", help="Why, for the audit trail. [default: the verdict]")
@click.option("--by", help="Who approves. [default: $MODELFACTORY_ACTOR, $USER, git user.email]")
@_friendly
def approve(
    model: str, version: str | None, segment: str | None, reason: str, by: str | None
) -> None:
    """Promote MODEL's evaluated candidate (or one segment's) without retraining.

    Refuses (exit 1) a version that was never evaluated, is not the latest evaluation, failed
    the gate, is the champion already, or was compared with a champion that has moved since.
    The promotion is a run of <model>/champion, endpoint and model_card, as an automatic one:
    the canary rollout, the audit trail ("approved by WHO"), the model card, the announcement.
    """
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.lifecycle.approval import latest_evaluation, refusal
    from modelfactory.orchestration.runs import approve as approve_in_run
    from modelfactory.stores.audit import actor

    project = load_project(projects_dir() / model)
    unit = _unit(project, segment)
    instance, registry = local_instance(), model_registry()
    evaluated = latest_evaluation(instance, project.name, segment)
    if evaluated is None and version is None:
        raise click.ClickException(
            f"{unit}: no candidate has been evaluated yet; `modelfactory train {cli_args(unit)}`"
        )
    chosen = (version or evaluated.version).removeprefix("v")
    problem = refusal(registry, unit, chosen, evaluated.version if evaluated else None)
    if problem is not None:
        raise click.ClickException(problem)
    before = registry.champion(unit)
    was = f"v{before.version}" if before else "none"
    who = actor(by)
    outcome = approve_in_run(
        project, chosen, approved_by=who, reason=reason, instance=instance, segment=segment
    )
    if not outcome.success and not outcome.promoted:
        for error in outcome.errors:
            click.echo(f"  {error.splitlines()[0]}", err=True)
        raise click.ClickException(f"{unit}: run {outcome.run_id} did not promote v{chosen}")
    if not outcome.success:  # the alias moved, then a step failed: the promotion stands
        raise click.ClickException(
            f"{unit}: promoted v{chosen} (champion {was} -> v{chosen}, approved by {who}); "
            f"then {_failures(outcome)}. The promotion stands: the endpoint rolls v{chosen} out"
            f"{' by canary' if before else ''}; `modelfactory rollback {cli_args(unit)}` "
            f"undoes it. Run: {dagster_run_url(outcome.run_id)}"
        )
    click.secho(f"{unit}: champion {was} -> v{outcome.champion}, approved by {who}", fg="green")
    click.echo(f"  {outcome.decision}\n  run: {dagster_run_url(outcome.run_id)}")
    if before is not None:
        click.echo("  the endpoint rolls it out by canary (`modelfactory status` shows where)")


@main.command(context_settings={"ignore_unknown_options": True})
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


@main.command()
@click.argument("models", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--refresh",
    default=1.0,
    show_default=True,
    help="Seconds between checks of the champion alias and the rollout table.",
)
@click.option(
    "--flush-every",
    type=float,
    default=None,
    help=(
        "Seconds between moves of captured requests from the spool to the warehouse "
        "[default: 1 locally; 30 in production, where each move is a Snowflake load]."
    ),
)
@click.option("--max-rows", default=1000, show_default=True, help="Rows allowed per request.")
@click.option(
    "--predict-threads",
    default=0,
    show_default=True,
    help="Threads for predict calls; 0 predicts on the event loop (fastest for scikit-learn).",
)
@click.option(
    "--max-body-mb", default=4.0, show_default=True, help="Largest request body (413 above)."
)
@_friendly
def serve(
    models: tuple[str, ...],
    host: str,
    port: int,
    refresh: float,
    flush_every: float | None,
    max_rows: int,
    predict_threads: int,
    max_body_mb: float,
) -> None:
    """Serve predictions of MODELS (default: all) at POST /models/<name>/predict.

    Each model answers with its champion; during a rollout the canary version takes its share.
    Every answered request is captured to the warehouse table <model>_inference_log.
    """
    import logging

    import uvicorn

    # deferred: loads fastapi; the CLI starts without it
    from modelfactory.serving.app import ServingSettings

    projects = _select(models)
    if not projects:
        raise click.ClickException(f"no model projects to serve in {projects_dir()}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("modelfactory").setLevel(logging.INFO)
    app = create_app(
        projects,
        registry=model_registry(),
        rollouts=rollout_store(),
        home=local_home().ensure(),
        settings=ServingSettings(
            refresh_seconds=refresh,
            flush_seconds=flush_every or _default_flush_seconds(),
            max_rows=max_rows,
            predict_threads=predict_threads,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
        ),
    )
    names = ", ".join(p.name for p in projects)
    click.secho(f"serving {names} at http://{host}:{port} (docs: /docs)", fg="green")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _default_flush_seconds() -> float:
    return 30.0 if current_profile().name == "production" else 1.0


@main.command()
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
@_friendly
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
    import shutil

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


@main.command()
@click.option("--port", default=3000, show_default=True, help="Dagster UI port.")
@click.option("--mlflow-port", default=5000, show_default=True, help="MLflow UI port.")
@click.option("--endpoint-port", default=8000, show_default=True, help="Prediction endpoint port.")
@click.option("--no-train", is_flag=True, help="Skip training models that have no champion.")
@_friendly
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
