"""The Dagster resources of one model project, by role, for the current profile.

stores/home.py decides where each store lives; this module wraps them as the resources
Dagster hands to assets and sensors (warehouse and io_manager IO managers, the artifact
store), so only orchestration/ knows Dagster's resource API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from modelfactory.stores.home import (
    audit_log,
    local_home,
    model_registry,
    notifier,
    rollout_store,
    s3_url,
    snowflake_settings,
)
from modelfactory.stores.inference_log import WAREHOUSE_CONNECTION_CONFIG
from modelfactory.stores.profile import Profile, current_profile
from modelfactory.stores.s3_files import is_s3_url, s3_resource, split_s3_url, upload

__all__ = ["ArtifactStore", "artifact_store", "project_resources"]


def project_resources(model: str) -> dict[str, Any]:
    """The resources one model project's assets need, by role, for the current profile."""
    profile = current_profile()
    stores = _production_stores(model, profile) if profile.name == "production" else None
    return {
        **(stores or _local_stores(model)),
        "model_registry": model_registry(),
        "artifact_store": artifact_store(),
        "rollouts": rollout_store(),
        "notifier": notifier(),
        "audit": audit_log(),
    }


def _local_stores(model: str) -> dict[str, Any]:
    from dagster import FilesystemIOManager
    from dagster_duckdb_pandas import DuckDBPandasIOManager

    home = local_home().ensure()
    return {
        "warehouse": DuckDBPandasIOManager(
            database=str(home.warehouse(model)), connection_config=WAREHOUSE_CONNECTION_CONFIG
        ),
        "io_manager": FilesystemIOManager(base_dir=str(home.storage(model))),
    }


def _production_stores(model: str, profile: Profile) -> dict[str, Any]:
    from dagster_aws.s3 import S3PickleIOManager
    from dagster_snowflake_pandas import SnowflakePandasIOManager

    bucket, prefix = split_s3_url(s3_url(profile, "storage", model))
    return {
        "warehouse": SnowflakePandasIOManager(
            **snowflake_settings(profile), schema=profile.schema(model)
        ),
        "io_manager": S3PickleIOManager(
            s3_resource=s3_resource(), s3_bucket=bucket, s3_prefix=prefix
        ),
    }


class ArtifactStore(ConfigurableResource):
    """Files people open (Evidently reports): kept in a folder, or under an S3 prefix.

    Reports are written to a local file first (Evidently writes files), then `publish`
    keeps them: locally they already are where they belong; in production they are
    uploaded and the local copy removed.
    """

    root: str  # a folder, or s3://bucket/prefix

    def local_path(self, model: str, filename: str) -> Path:
        if is_s3_url(self.root):
            return local_home().root / "outbox" / model / filename
        return Path(self.root) / model / filename

    def publish(self, path: Path, model: str) -> str:
        """Keep the file written at `local_path(model, ...)`; returns where it is now."""
        if not is_s3_url(self.root):
            return str(path)
        url = upload(path, f"{self.root}/{model}/{path.name}", content_type="text/html")
        path.unlink()
        return url


def artifact_store() -> ArtifactStore:
    profile = current_profile()
    if profile.name == "production":
        return ArtifactStore(root=s3_url(profile, "reports"))
    return ArtifactStore(root=str(local_home().root / "reports"))
