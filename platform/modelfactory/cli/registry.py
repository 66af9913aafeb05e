"""Commands that move a champion by hand: `rollback` (the previous one back) and `approve`
(a person promotes the evaluated candidate they reviewed)."""

from __future__ import annotations

import click

from modelfactory.cli.common import describe_failures, friendly, unit_of
from modelfactory.project.loader import load_project, projects_dir
from modelfactory.project.segments import cli_args
from modelfactory.stores.home import model_registry, rollout_store
from modelfactory.stores.instance import local_instance, record_alias_move
from modelfactory.stores.urls import dagster_run_url

__all__ = ["approve", "rollback"]


@click.command()
@click.argument("model")
@click.option("--reason", default="manual rollback", show_default=True)
@click.option("--segment", help="The segment to roll back, for a segmented model.")
@friendly
def rollback(model: str, reason: str, segment: str | None) -> None:
    """Put back the champion that MODEL's (or one segment's) current champion replaced."""
    # deferred: loads dagster; the CLI starts without it
    from modelfactory.orchestration.runs import refresh_card
    from modelfactory.stores.audit import actor

    project = load_project(projects_dir() / model)
    unit = unit_of(project, segment)
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


@click.command()
@click.argument("model")
@click.option(
    "--version",
    help="The evaluated candidate to promote. [default: the latest evaluated, the challenger]",
)
@click.option("--segment", help="The segment whose candidate it is, for a segmented model.")
@click.option("--reason", default="", help="Why, for the audit trail. [default: the verdict]")
@click.option("--by", help="Who approves. [default: $MODELFACTORY_ACTOR, $USER, git user.email]")
@friendly
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
    unit = unit_of(project, segment)
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
            f"then {describe_failures(outcome)}. The promotion stands: the endpoint rolls "
            f"v{chosen} out{' by canary' if before else ''}; "
            f"`modelfactory rollback {cli_args(unit)}` "
            f"undoes it. Run: {dagster_run_url(outcome.run_id)}"
        )
    click.secho(f"{unit}: champion {was} -> v{outcome.champion}, approved by {who}", fg="green")
    click.echo(f"  {outcome.decision}\n  run: {dagster_run_url(outcome.run_id)}")
    if before is not None:
        click.echo("  the endpoint rolls it out by canary (`modelfactory status` shows where)")
