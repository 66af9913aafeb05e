"""Commands that read what happened: `status`, `history` (and who served `--at` a moment),
`reproduce` (retrain a version from its snapshot) and `diff` (why two versions differ)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time
from typing import Any

import click

from modelfactory.cli.common import friendly, unit_of
from modelfactory.project.loader import discover_projects, load_project, projects_dir
from modelfactory.project.segments import segment_model
from modelfactory.stores.home import audit_log, model_registry, rollout_store
from modelfactory.stores.instance import local_instance

__all__ = ["diff", "history", "reproduce", "status"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
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


@click.command()
@click.argument("model")
@click.option("--segment", help="Only this segment of a segmented model (default: each one).")
@click.option(
    "--at",
    "moment",
    help="Which version was the champion then, and why: YYYY-MM-DD (that day's end, UTC) "
    "or an ISO time.",
)
@friendly
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


@click.command()
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
@friendly
def reproduce(model: str, version: str, segment: str | None, tolerance: float) -> None:
    """Retrain MODEL's VERSION from its recorded data snapshot and params, and report whether
    its holdout metric matches the recorded one (exit 1 when it does not)."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.reports.reproduce import reproduce as rebuild

    project = load_project(projects_dir() / model)
    unit = unit_of(project, segment)
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


@click.command()
@click.argument("model")
@click.argument("version_a")
@click.argument("version_b")
@click.option("--segment", help="The segment whose versions they are, for a segmented model.")
@friendly
def diff(model: str, version_a: str, version_b: str, segment: str | None) -> None:
    """Why MODEL changed from VERSION_A to VERSION_B: metrics overall and per slice, data
    (rows, time range, schema, per-feature shift), code, params and environment."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.reports.version_diff import diff_versions

    project = load_project(projects_dir() / model)
    unit = unit_of(project, segment)
    found = diff_versions(
        project,
        unit,
        version_a.removeprefix("v"),
        version_b.removeprefix("v"),
        registry=model_registry(),
        audit=audit_log(),
    )
    click.echo(found.render())


def _moment(text: str) -> Any:
    """--at as an aware UTC time; a bare date means the end of that day."""
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
