"""The Dagster resources of a code location's models, by role, for the current profile.

stores/home.py decides where each store lives; this module wraps them as the resources
Dagster hands to assets and sensors (warehouse and io_manager IO managers, the artifact
store), so only orchestration/ knows Dagster's resource API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from modelfactory.orchestration.model_stores import ModelDuckDBWarehouse, ModelFilesystemStorage
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

__all__ = ["ArtifactStore", "artifact_store", "location_resources", "project_resources"]


def location_resources() -> dict[str, Any]:
    """The resources of a code location's assets and sensors, by role, for the current profile.

    One set serves every model of the location: `warehouse` and `io_manager` route each asset
    to its own model's store by the first part of its key (model_stores.py), so the data stay
    one DuckDB file (or Snowflake schema) and one storage folder (or S3 prefix) per model.
    """
    profile = current_profile()
    stores = _production_stores(profile) if profile.name == "production" else _local_stores()
    return {
        **stores,
        "model_registry": model_registry(),
        "artifact_store": artifact_store(),
        "rollouts": rollout_store(),
        "notifier": notifier(),
        "audit": audit_log(),
    }


def project_resources(model: str) -> dict[str, Any]:
    """The resources `model`'s assets and sensors need: its location's, which route to the
    model's own stores (kept for callers that build one model's definitions or sensor context)."""
    del model  # every model of a location shares them
    return location_resources()


def _local_stores() -> dict[str, Any]:
    home = local_home().ensure()
    return {
        "warehouse": ModelDuckDBWarehouse(
            path=home.warehouse_template, connection_config=WAREHOUSE_CONNECTION_CONFIG
        ),
        "io_manager": ModelFilesystemStorage(base_dir=str(home.root / "storage")),
    }


def _production_stores(profile: Profile) -> dict[str, Any]:
    # Snowflake's and S3's clients load only where the production profile needs them.
    from modelfactory.orchestration.cloud_stores import ModelS3Storage, ModelSnowflakeWarehouse

    bucket, prefix = split_s3_url(s3_url(profile, "storage"))
    return {
        "warehouse": ModelSnowflakeWarehouse(**snowflake_settings(profile)),
        "io_manager": ModelS3Storage(s3_resource=s3_resource(), s3_bucket=bucket, s3_prefix=prefix),
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
