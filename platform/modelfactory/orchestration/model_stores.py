"""IO managers shared by every model of a code location, each model's data still apart.

Many models share one code location, so `warehouse` and `io_manager` are one resource each,
location-wide; each asset's data goes to its own model's store, chosen by the first part of
its key (`<model>/<step>`). The layout on disk and in Snowflake stays one store per model:

| role | local | production |
|---|---|---|
| warehouse | `warehouse/<ns><model>_warehouse.duckdb`, schema `<model>` | schema `<ns><model>` |
| io_manager | `<base_dir>/<model>/` (pickles) | `s3://<bucket>/<prefix>/<model>/` |

(`<ns>`: the branch namespace, `<branch>__`, or nothing on production's branch.)

DuckDB takes one writer per file, so a file per model keeps models from waiting on each other;
a Snowflake schema and an S3 prefix per model keep their tables and objects apart and
droppable one model at a time.

Each router builds its model's Dagster IO manager (DuckDB's, Snowflake's, the filesystem's,
S3's) on first use in a step and keeps it for the step's other outputs. Production's two
(Snowflake, S3) are in cloud_stores.py, so a local code location never imports their clients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dagster import (
    ConfigurableIOManagerFactory,
    FilesystemIOManager,
    InitResourceContext,
    InputContext,
    IOManager,
    OutputContext,
)
from pydantic import Field

from modelfactory.errors import ProjectError

__all__ = [
    "ByModel",
    "ModelDuckDBWarehouse",
    "ModelFilesystemStorage",
    "model_of",
]


def model_of(context: InputContext | OutputContext) -> str:
    """The model an output or input belongs to: the first part of its asset key."""
    if not context.has_asset_key:
        raise ProjectError(
            "Model Factory's stores hold assets keyed <model>/<step>; this output has no asset key"
        )
    return context.asset_key.path[0]


class ByModel(IOManager):
    """Hands each output and input to its model's own IO manager, built once per model."""

    def __init__(self, store_for: Callable[[str], IOManager]) -> None:
        self._store_for = store_for
        self._stores: dict[str, IOManager] = {}

    def _store(self, context: InputContext | OutputContext) -> IOManager:
        model = model_of(context)
        if model not in self._stores:
            self._stores[model] = self._store_for(model)
        return self._stores[model]

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self._store(context).handle_output(context, obj)

    def load_input(self, context: InputContext) -> Any:
        return self._store(context).load_input(context)


class _OwnConfig:
    """A step's IO context whose `resource_config` is one model's DuckDB settings.

    Dagster's DuckDB client opens `context.resource_config["database"]`, the config of the
    resource the asset names; here that is the location-wide router, so each model's IO
    manager sees its own file instead. Everything else is the step's context itself.
    """

    def __init__(self, context: InputContext | OutputContext, config: dict[str, Any]) -> None:
        self._context = context
        self.resource_config = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _OwnFile(IOManager):
    """One model's DuckDB IO manager, opening that model's file."""

    def __init__(self, inner: IOManager, config: dict[str, Any]) -> None:
        self._inner, self._config = inner, config

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self._inner.handle_output(_OwnConfig(context, self._config), obj)  # type: ignore[arg-type]

    def load_input(self, context: InputContext) -> Any:
        return self._inner.load_input(_OwnConfig(context, self._config))  # type: ignore[arg-type]


class ModelDuckDBWarehouse(ConfigurableIOManagerFactory):
    """`warehouse`, locally: DataFrames in one DuckDB file per model, table `<model>.<step>`."""

    path: str = Field(description="Each model's DuckDB file, `{model}` standing for its name.")
    connection_config: dict[str, Any] = Field(
        default_factory=dict, description="DuckDB settings every connection to a file uses."
    )

    def create_io_manager(self, context: InitResourceContext) -> IOManager:
        from dagster_duckdb_pandas import DuckDBPandasIOManager  # pandas: only when a step runs

        def store_for(model: str) -> IOManager:
            config = {
                "database": self.path.format(model=model),
                "connection_config": self.connection_config,
            }
            inner = DuckDBPandasIOManager(**config).create_io_manager(context)
            return _OwnFile(inner, {**config, "schema": None})

        return ByModel(store_for)


class ModelFilesystemStorage(ConfigurableIOManagerFactory):
    """`io_manager`, locally: small Python objects pickled under `<base_dir>/<model>/`."""

    base_dir: str = Field(description="The folder holding one sub-folder per model.")

    def create_io_manager(self, context: InitResourceContext) -> IOManager:
        def store_for(model: str) -> IOManager:
            own = FilesystemIOManager(base_dir=f"{self.base_dir.rstrip('/')}/{model}")
            return own.create_io_manager(context)

        return ByModel(store_for)
