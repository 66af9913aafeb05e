"""Where state lives and which resource plays each role, decided in one place.

Roles, never vendors: `warehouse` (DataFrames between assets), `io_manager` (small Python
objects between assets), `model_registry` (MLflow). Locally every store sits under one
folder, MODELFACTORY_HOME (default `.modelfactory/` in the repo), so a test or a second
checkout isolates itself by pointing it elsewhere. The production profile will swap the
implementations here; model projects never change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelfactory.notify import Notifier
    from modelfactory.registry import ModelRegistry
    from modelfactory.serving.rollouts import RolloutStore

__all__ = [
    "LocalHome",
    "dagster_asset_url",
    "dagster_run_url",
    "endpoint_url",
    "find_repo_root",
    "local_home",
    "model_registry",
    "notifier",
    "project_resources",
    "rollout_store",
]

HOME_ENV = "MODELFACTORY_HOME"

# DuckDB refuses a second connection to a file from the same process unless its settings
# match, so every connection to a warehouse file (Dagster's IO manager, the endpoint's
# capture) uses these.
WAREHOUSE_CONNECTION_CONFIG = {"custom_user_agent": "modelfactory"}


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` holding workspace.yaml (else `start` itself)."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "workspace.yaml").is_file():
            return folder
    return start


@dataclass(frozen=True)
class LocalHome:
    """The layout of MODELFACTORY_HOME: one sub-folder per kind of state."""

    root: Path

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.mlflow_dir / "artifacts"

    def warehouse(self, model: str) -> Path:
        """One DuckDB file per model: DuckDB takes one writer at a time, so models run apart.

        The file is not named after the model: DuckDB would then see a catalog and a schema
        of the same name and refuse to resolve `<model>.<table>`.
        """
        return self.root / "warehouse" / f"{model}_warehouse.duckdb"

    def storage(self, model: str) -> Path:
        return self.root / "storage" / model

    def data(self, model: str) -> Path:
        """Where a model's load_raw reads its raw files (seeded by its simulate.py)."""
        return self.root / "data" / model

    def reports(self, model: str) -> Path:
        return self.root / "reports" / model

    def capture(self, model: str) -> Path:
        """The endpoint's spool of answered requests, before they reach the warehouse."""
        return self.root / "capture" / model

    def labels(self, model: str) -> Path:
        """Where late labels arrive: CSV/Parquet files of request_id, row_index and target."""
        return self.root / "labels" / model

    @property
    def serving_db_url(self) -> str:
        """Rollout state, shared by the endpoint, the endpoint asset and the canary sensor."""
        return f"sqlite:///{self.root / 'serving.db'}"

    @property
    def alerts_log(self) -> Path:
        return self.root / "alerts.jsonl"

    def ensure(self) -> LocalHome:
        for folder in (self.dagster_home, self.artifact_root, self.root / "warehouse"):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def local_home() -> LocalHome:
    """MODELFACTORY_HOME if set, else `.modelfactory/` in the repository."""
    configured = os.environ.get(HOME_ENV)
    root = Path(configured) if configured else find_repo_root() / ".modelfactory"
    return LocalHome(root.resolve())


def project_resources(model: str) -> dict[str, Any]:
    """The resources one model project's assets need, by role, for the local profile."""
    from dagster import FilesystemIOManager
    from dagster_duckdb_pandas import DuckDBPandasIOManager

    home = local_home().ensure()
    return {
        "warehouse": DuckDBPandasIOManager(
            database=str(home.warehouse(model)), connection_config=WAREHOUSE_CONNECTION_CONFIG
        ),
        "io_manager": FilesystemIOManager(base_dir=str(home.storage(model))),
        "model_registry": model_registry(),
        "rollouts": rollout_store(),
        "notifier": notifier(),
    }


def model_registry() -> ModelRegistry:
    """The registry of the local profile: MLflow on sqlite with artifacts beside it."""
    from modelfactory.registry import ModelRegistry

    home = local_home().ensure()
    return ModelRegistry(
        tracking_uri=home.tracking_uri,
        artifact_root=str(home.artifact_root),
        ui_url=os.environ.get("MODELFACTORY_MLFLOW_UI", "http://localhost:5000"),
    )


def rollout_store() -> RolloutStore:
    """Rollout state: MODELFACTORY_SERVING_DB (any SQLAlchemy URL), else sqlite in the home."""
    from modelfactory.serving.rollouts import RolloutStore

    url = os.environ.get("MODELFACTORY_SERVING_DB") or local_home().ensure().serving_db_url
    return RolloutStore(url=url)


def notifier() -> Notifier:
    """The alerts log in the home; also Slack when SLACK_BOT_TOKEN and
    MODELFACTORY_SLACK_CHANNEL are set (MODELFACTORY_SLACK_API_URL: a proxy or GovSlack).

    The token goes in as an EnvVar: Dagster resolves it when it builds the resource, and the
    UI shows the variable's name, never the token.
    """
    from dagster import EnvVar

    from modelfactory.notify import Notifier

    channel = os.environ.get("MODELFACTORY_SLACK_CHANNEL") or None
    token = EnvVar("SLACK_BOT_TOKEN") if os.environ.get("SLACK_BOT_TOKEN") else None
    return Notifier(
        log_path=str(local_home().ensure().alerts_log),
        slack_token=token,
        slack_channel=channel,
        slack_api_url=os.environ.get("MODELFACTORY_SLACK_API_URL") or None,
    )


def endpoint_url() -> str:
    """Where the endpoint answers, for links in the UI (`modelfactory serve` defaults)."""
    return os.environ.get("MODELFACTORY_ENDPOINT_URL", "http://localhost:8000").rstrip("/")


def dagster_run_url(run_id: str) -> str:
    """A run's page in the Dagster UI, for alerts (`modelfactory dev` serves it on :3000)."""
    return f"{_dagster_url()}/runs/{run_id}"


def dagster_asset_url(*path: str) -> str:
    """An asset's page in the Dagster UI: its history, metadata plots and lineage."""
    return f"{_dagster_url()}/assets/{'/'.join(path)}"


def _dagster_url() -> str:
    return os.environ.get("MODELFACTORY_DAGSTER_URL", "http://localhost:3000").rstrip("/")
