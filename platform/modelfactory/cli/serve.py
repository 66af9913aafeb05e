"""`modelfactory serve`: the prediction endpoint for every model, under uvicorn."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import click

from modelfactory.cli.common import friendly, select_projects
from modelfactory.project.loader import projects_dir
from modelfactory.serving import create_app
from modelfactory.serving.residency import parse_size
from modelfactory.stores.home import local_home, model_registry, rollout_store
from modelfactory.stores.profile import current_profile

if TYPE_CHECKING:
    from modelfactory.project.loader import ModelProject
    from modelfactory.serving.app import ServingSettings

__all__ = ["serve"]


@click.command()
@click.argument("models", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--refresh",
    default=1.0,
    show_default=True,
    help=(
        "Seconds between checks of the serving generation, one query that moves with every "
        "champion move and rollout change the platform makes."
    ),
)
@click.option(
    "--reconcile",
    default=60.0,
    show_default=True,
    help=(
        "Seconds between full re-reads of every model's champion alias and rollout, which "
        "catch aliases moved outside the platform (the MLflow UI)."
    ),
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
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help=(
        "Worker processes on the one port, each loading every model (memory grows with N); "
        "a worker that dies is restarted."
    ),
)
@click.option(
    "--memory-budget",
    default=None,
    metavar="SIZE",
    help=(
        "Load each model on its first request and evict the least recently used beyond SIZE "
        "(2GiB, 512MiB; per worker), each estimated by its pickle's length [default: load all at "
        "start]."
    ),
)
@click.option(
    "--max-loaded",
    type=click.IntRange(min=1),
    default=None,
    help="As --memory-budget, by count: at most N versions in memory (a rollout's are kept).",
)
@friendly
def serve(
    models: tuple[str, ...],
    host: str,
    port: int,
    refresh: float,
    reconcile: float,
    flush_every: float | None,
    max_rows: int,
    predict_threads: int,
    max_body_mb: float,
    workers: int,
    memory_budget: str | None,
    max_loaded: int | None,
) -> None:
    """Serve predictions of MODELS (default: all) at POST /models/<name>/predict.

    Each model answers with its champion; during a rollout the canary version takes its share.
    Every answered request is captured to the warehouse table <model>_inference_log.
    With --workers N, N processes answer on the port, each routing, batching and capturing
    on its own (capture stays exactly once; canary shares hold across them).
    With --memory-budget or --max-loaded, models load on demand: a cold request waits for
    its model's load (then 503 with Retry-After) and the least recently used are evicted.
    """
    # deferred: uvicorn and the app's module load fastapi; the CLI starts without them
    import uvicorn

    from modelfactory.serving.app import ServingSettings

    projects = select_projects(models)
    if not projects:
        raise click.ClickException(f"no model projects to serve in {projects_dir()}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("modelfactory").setLevel(logging.INFO)
    settings = ServingSettings(
        refresh_seconds=refresh,
        reconcile_seconds=reconcile,
        flush_seconds=flush_every or _default_flush_seconds(),
        max_rows=max_rows,
        predict_threads=predict_threads,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        memory_budget_bytes=_budget(memory_budget),
        max_loaded=max_loaded,
    )
    if workers > 1:
        _serve_workers(projects, settings, host, port, workers)
        return
    app = create_app(
        projects,
        registry=model_registry(),
        rollouts=rollout_store(),
        home=local_home().ensure(),
        settings=settings,
    )
    names = ", ".join(p.name for p in projects)
    click.secho(f"serving {names} at http://{host}:{port} (docs: /docs)", fg="green")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _serve_workers(
    projects: list[ModelProject], settings: ServingSettings, host: str, port: int, workers: int
) -> None:
    """uvicorn's supervisor on the port, and `workers` processes each building the app from
    serving/workers.py's factory (uvicorn needs an import string to start more than one)."""
    # deferred: uvicorn and the worker module load fastapi; the CLI starts without them
    import uvicorn

    from modelfactory.serving.workers import APP_FACTORY, worker_env

    local_home().ensure()
    os.environ.update(worker_env(projects, settings))  # the spawned workers inherit it
    names = ", ".join(p.name for p in projects)
    click.secho(
        f"serving {names} at http://{host}:{port} with {workers} workers (docs: /docs)",
        fg="green",
    )
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )


def _budget(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--memory-budget") from None


def _default_flush_seconds() -> float:
    """Production's every flush is a Snowflake load: fewer, larger ones; locally, promptly."""
    return 30.0 if current_profile().name == "production" else 1.0
