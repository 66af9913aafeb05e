"""`modelfactory serve --workers N`: the same endpoint in N processes on one port.

uvicorn starts N worker processes only from an import string, so each worker builds its own
app with `factory()` from what `serve` chose, handed over in one environment variable
(`worker_env`). Nothing is shared in memory between workers; what must hold across them is
already shared outside the process:

- **Capture, exactly once.** Each worker appends to its own spool segments (named by host
  and pid, serving/capture.py), and flushes its own; a segment whose writer died (a worker
  killed, then restarted by uvicorn's supervisor under a new pid) is flushed by whichever
  worker gets to it first. A flush holds the warehouse file while it reads the committed
  offset, writes the rows with the new offset in one transaction and removes a finished
  segment, so no row is written twice and none is lost.
- **Canary shares.** Every worker's refresher reads the same rollout table, and each
  request draws its own random number against the rollout's percent: N workers together
  answer that percent, whichever worker a request reaches.

Each worker loads every served model: memory grows with N.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from modelfactory.project.loader import load_project
from modelfactory.serving.app import ServingSettings, create_app
from modelfactory.stores.home import local_home, model_registry, rollout_store

if TYPE_CHECKING:
    from fastapi import FastAPI

    from modelfactory.project.loader import ModelProject

__all__ = ["APP_FACTORY", "WORKER_ENV", "factory", "worker_env"]

WORKER_ENV = "MODELFACTORY_SERVE_WORKER"
APP_FACTORY = "modelfactory.serving.workers:factory"  # what uvicorn imports in each worker


def worker_env(projects: Sequence[ModelProject], settings: ServingSettings) -> dict[str, str]:
    """The environment variable that tells each worker what `serve` chose: the project
    folders (a worker loads them itself, from any working directory) and the settings."""
    config = {"projects": [str(p.root) for p in projects], "settings": asdict(settings)}
    return {WORKER_ENV: json.dumps(config)}


def factory() -> FastAPI:
    """The app of one worker, from the variable `worker_env` set (uvicorn calls this in each
    worker process, and again in a worker it restarts)."""
    raw = os.environ.get(WORKER_ENV)
    if not raw:
        raise RuntimeError(f"{WORKER_ENV} is not set: start workers with `modelfactory serve`")
    config = json.loads(raw)
    # A spawned worker starts a fresh interpreter: the CLI's logging setup is not inherited.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("modelfactory").setLevel(logging.INFO)
    return create_app(
        [load_project(Path(root)) for root in config["projects"]],
        registry=model_registry(),
        rollouts=rollout_store(),
        home=local_home().ensure(),
        settings=ServingSettings(**config["settings"]),
    )
