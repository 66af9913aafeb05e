"""Where state lives and which resource plays each role, decided in one place.

Roles, never vendors: `warehouse` (DataFrames between assets), `io_manager` (small Python
objects between assets), `model_registry` (MLflow), `artifact_store` (reports people read),
`rollouts`, `notifier`, and the inference log's store. profile.py decides the environment;
each function here builds its role's store for that profile (orchestration/resources.py
wraps the warehouse, io_manager and artifact_store as Dagster resources):

| role | local | production |
|---|---|---|
| warehouse | DuckDB file per model | Snowflake (dagster-snowflake-pandas), schema per model |
| io_manager | files | S3 (dagster-aws) |
| model_registry | MLflow on sqlite | the MLflow server at MLFLOW_TRACKING_URI |
| artifact_store | folder | S3 |
| inference log | the model's DuckDB file | the model's Snowflake schema; raw segments in S3 |
| label files | a folder | an S3 prefix, mirrored to a folder |
| rollouts | sqlite | MODELFACTORY_SERVING_DB (Postgres) |

Locally every store sits under one folder, MODELFACTORY_HOME (default `.modelfactory/` in the
repo), so a test or a second checkout isolates itself by pointing it elsewhere. In production
that folder still holds the endpoint's capture spool, the mirror of the label files and the
alerts log. Model projects never change between the two.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfactory.ml.live import LABEL_SUFFIXES
from modelfactory.project.loader import find_repo_root
from modelfactory.project.segments import split_unit
from modelfactory.stores.inference_log import DuckDBStore, SnowflakeStore
from modelfactory.stores.profile import Profile, current_profile
from modelfactory.stores.s3_files import join_key, sync_down, upload
from modelfactory.stores.urls import service_url

if TYPE_CHECKING:
    from dagster_snowflake import SnowflakeResource

    from modelfactory.stores.audit import AuditLog
    from modelfactory.stores.inference_log import InferenceStore
    from modelfactory.stores.notify import Notifier
    from modelfactory.stores.registry import ModelRegistry
    from modelfactory.stores.rollouts import RolloutStore

# Deferred imports: the dagster and dagster-snowflake configuration types load only when a
# production profile is read; the local profile needs neither.

__all__ = [
    "LocalHome",
    "audit_log",
    "capture_archive",
    "inference_store",
    "label_folder",
    "local_home",
    "model_registry",
    "notifier",
    "platform_db_url",
    "rollout_store",
    "s3_url",
    "snapshot_root",
    "snowflake_resource",
    "snowflake_settings",
    "warehouse_kind",
]

HOME_ENV = "MODELFACTORY_HOME"


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
        return Path(self.warehouse_template.format(model=model))

    @property
    def warehouse_template(self) -> str:
        """The path of every model's DuckDB file, `{model}` standing for the model's name."""
        namespace = current_profile().namespace  # a branch gets its own files
        return str(self.root / "warehouse" / f"{namespace}{{model}}_warehouse.duckdb")

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


def warehouse_kind() -> str:
    """The engine behind `warehouse`, as the UI's kind tag on the assets stored there."""
    return "snowflake" if current_profile().name == "production" else "duckdb"


def s3_url(profile: Profile, kind: str, model: str = "") -> str:
    """`s3://<bucket>/<prefix>/<branch namespace><kind>/<model>`: one tree per branch."""
    settings = profile.production
    key = join_key(settings.s3_prefix, f"{profile.namespace}{kind}", model)
    return f"s3://{settings.s3_bucket}/{key}"


def snowflake_settings(profile: Profile) -> dict[str, Any]:
    """Connection settings shared by the IO manager and the inference log's resource.

    The password goes in as an EnvVar, so the UI shows the variable's name, never its value.
    SNOWFLAKE_CONNECTION_ARGS (JSON) adds connector arguments, e.g. a proxy host.
    """
    from dagster import EnvVar

    settings = profile.production
    extra = json.loads(os.environ.get("SNOWFLAKE_CONNECTION_ARGS") or "{}")
    password = EnvVar("SNOWFLAKE_PASSWORD") if os.environ.get("SNOWFLAKE_PASSWORD") else None
    return {
        "account": settings.snowflake_account,
        "user": settings.snowflake_user,
        "password": password,
        "database": settings.snowflake_database,
        "warehouse": settings.snowflake_warehouse,
        "role": settings.snowflake_role,
        "additional_snowflake_connection_args": {"paramstyle": "qmark", **extra},
    }


def snowflake_resource() -> SnowflakeResource:
    from dagster_snowflake import SnowflakeResource

    return SnowflakeResource(**snowflake_settings(current_profile()))


def inference_store(model: str, keep_open: bool = False) -> InferenceStore:
    """Where `model`'s inference log lives: its DuckDB file, or its Snowflake schema (a
    segment's, `<model>.<segment>`, in its model's).

    `keep_open`: one long-lived user (the endpoint's flusher) keeps its Snowflake session
    between uses; DuckDB's file is always released, since Dagster's runs write to it too.
    """

    model, _ = split_unit(model)  # a segment's log is a table beside its model's
    profile = current_profile()
    if profile.name == "production":
        schema = profile.schema(model)
        return SnowflakeStore(resource=snowflake_resource(), schema=schema, keep_open=keep_open)
    return DuckDBStore(local_home().warehouse(model), schema=model)


def label_folder(model: str) -> Path:
    """The folder holding `model`'s late label files, ready to read.

    Locally that is `labels/<model>/` in the home, where files are dropped. In production
    labels land in S3 (`<prefix>/<branch>labels/<model>/`, where the jobs that know the
    outcomes write them); each call mirrors new or changed objects into the home, so the
    readers see the same folder of files in both profiles.
    """
    profile = current_profile()
    if profile.name != "production":
        return local_home().labels(model)

    mirror = local_home().root / "labels-s3" / f"{profile.namespace}{model}"
    return sync_down(s3_url(profile, "labels", model), mirror, LABEL_SUFFIXES)


def capture_archive(model: str) -> Callable[[Path], str] | None:
    """Where a fully flushed spool segment of `model` goes before it is deleted: nowhere
    locally (its rows are in the warehouse), S3 in production (`<prefix>/<branch>
    inference_log/<model>/<day>/<segment>`), so the raw requests outlive the endpoint's disk.
    """
    profile = current_profile()
    if profile.name != "production":
        return None
    root = s3_url(profile, "inference_log", model)

    def archive(segment: Path) -> str:
        # Segment names start with the nanosecond time they were opened at.
        opened = datetime.fromtimestamp(int(segment.name.split("-")[0]) / 1e9, UTC)
        url = f"{root}/{opened:%Y-%m-%d}/{segment.name}"
        return upload(segment, url, content_type="application/x-ndjson")

    return archive


def model_registry() -> ModelRegistry:
    """MLflow on sqlite with artifacts beside it, or production's MLflow server (which keeps
    artifacts itself: its --artifacts-destination, S3); names carry the branch's namespace."""
    # deferred: the store is a Dagster resource (loads dagster); the CLI imports home
    from modelfactory.stores.registry import ModelRegistry

    profile = current_profile()
    ui_url = service_url("mlflow")
    if profile.name == "production":
        uri = profile.production.mlflow_tracking_uri
        return ModelRegistry(tracking_uri=uri, ui_url=ui_url, namespace=profile.namespace)
    home = local_home().ensure()
    return ModelRegistry(
        tracking_uri=home.tracking_uri,
        artifact_root=str(home.artifact_root),
        ui_url=ui_url,
        namespace=profile.namespace,
    )


def rollout_store() -> RolloutStore:
    """Rollout state, in the platform's database."""
    # deferred: the store is a Dagster resource (loads dagster); the CLI imports home
    from modelfactory.stores.rollouts import RolloutStore

    return RolloutStore(url=platform_db_url())


def audit_log() -> AuditLog:
    """The audit trail (runs, verdicts, champion moves, alerts), in the platform's database."""
    # deferred: the store is a Dagster resource (loads dagster); the CLI imports home
    from modelfactory.stores.audit import AuditLog

    return AuditLog(url=platform_db_url())


def platform_db_url() -> str:
    """The platform's own tables: MODELFACTORY_SERVING_DB (any SQLAlchemy URL; Postgres in
    production), else sqlite in the home."""
    current_profile()  # an unknown profile fails here, before the endpoint starts
    return os.environ.get("MODELFACTORY_SERVING_DB") or local_home().ensure().serving_db_url


def snapshot_root() -> str:
    """Where training data snapshots are kept: a folder in the home, or S3 in production."""
    profile = current_profile()
    if profile.name == "production":
        return s3_url(profile, "snapshots")
    return str(local_home().root / "snapshots")


def notifier() -> Notifier:
    """The alerts log in the home; also Slack when SLACK_BOT_TOKEN and
    MODELFACTORY_SLACK_CHANNEL are set (MODELFACTORY_SLACK_API_URL: a proxy or GovSlack).

    The token goes in as an EnvVar: Dagster resolves it when it builds the resource, and the
    UI shows the variable's name, never the token.
    """
    from dagster import EnvVar

    # deferred: the store is a Dagster resource (loads dagster); the CLI imports home
    from modelfactory.stores.notify import Notifier

    channel = os.environ.get("MODELFACTORY_SLACK_CHANNEL") or None
    token = EnvVar("SLACK_BOT_TOKEN") if os.environ.get("SLACK_BOT_TOKEN") else None
    return Notifier(
        log_path=str(local_home().ensure().alerts_log),
        slack_token=token,
        slack_channel=channel,
        slack_api_url=os.environ.get("MODELFACTORY_SLACK_API_URL") or None,
        audit_url=platform_db_url(),
    )
