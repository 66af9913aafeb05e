"""An empty MLflow sqlite store for each project's contract run, made once and copied."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import pytest

from modelfactory.testing.diagnostics import quiet

__all__ = ["copy_empty_store"]


_STORE_TEMPLATE = pytest.StashKey[Path]()


def copy_empty_store(config: pytest.Config, target: Path) -> None:
    """An empty MLflow sqlite store, copied into a project's home.

    Creating a store runs MLflow's migrations (seconds); a copy takes milliseconds. The empty
    store is made once per MLflow version and kept in pytest's cache (.pytest_cache), or once
    per session when the cache is off.
    """
    if target.exists():
        return
    template = config.stash.get(_STORE_TEMPLATE, None)
    if template is None or not template.exists():
        template = config.stash[_STORE_TEMPLATE] = _empty_store(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


def _empty_store(config: pytest.Config) -> Path:
    # deferred: loads dagster; every pytest run loads this plugin
    from modelfactory.stores.registry import ModelRegistry

    name = f"mlflow-{version('mlflow')}.db"
    cache = getattr(config, "cache", None)
    cached = cache.mkdir("modelfactory-contracts") / name if cache is not None else None
    if cached is not None and cached.exists():
        return cached
    folder = Path(tempfile.mkdtemp(prefix="mf-contracts-mlflow-"))
    config.add_cleanup(functools.partial(shutil.rmtree, folder, True))
    made = folder / name
    with quiet("mlflow", "alembic"):
        ModelRegistry(tracking_uri=f"sqlite:///{made}").latest_version("-")
    if cached is None:
        return made
    partial = cached.with_name(f"{name}.{os.getpid()}")
    shutil.copyfile(made, partial)
    os.replace(partial, cached)  # atomic: a concurrent session sees all of it or none
    return cached
