"""Production's location-wide stores: Snowflake and S3, one schema and one prefix per model.

See model_stores.py for why the stores are routed by model; this module only imports the
Snowflake and S3 clients, which the local profile never needs.
"""

from __future__ import annotations

from dagster import ConfigurableIOManagerFactory, InitResourceContext, IOManager
from dagster_aws.s3 import S3PickleIOManager, S3Resource
from dagster_snowflake_pandas import SnowflakePandasIOManager
from pydantic import Field

from modelfactory.orchestration.model_stores import ByModel
from modelfactory.stores.profile import current_profile
from modelfactory.stores.s3_files import join_key

__all__ = ["ModelS3Storage", "ModelSnowflakeWarehouse"]


class ModelSnowflakeWarehouse(SnowflakePandasIOManager):
    """`warehouse`, in production: DataFrames in Snowflake, one schema per model.

    The settings are exactly Snowflake's IO manager's (its client connects with this
    resource's config, so it can take no field of its own); `schema` is left unset: each
    model's is the profile's `<branch namespace><model>`, read when a step starts.
    """

    def create_io_manager(self, context: InitResourceContext) -> IOManager:
        namespace = current_profile().namespace
        settings = {
            (field.alias or name): getattr(self, name)
            for name, field in SnowflakePandasIOManager.model_fields.items()
        }

        def store_for(model: str) -> IOManager:
            own = {**settings, "schema": f"{namespace}{model}"}
            return SnowflakePandasIOManager(**own).create_io_manager(context)

        return ByModel(store_for)


class ModelS3Storage(ConfigurableIOManagerFactory):
    """`io_manager`, in production: small Python objects pickled under `<prefix>/<model>/`."""

    s3_resource: S3Resource
    s3_bucket: str = Field(description="The bucket.")
    s3_prefix: str = Field(description="The prefix holding one prefix per model.")

    def create_io_manager(self, context: InitResourceContext) -> IOManager:
        def store_for(model: str) -> IOManager:
            return S3PickleIOManager(
                s3_resource=self.s3_resource,
                s3_bucket=self.s3_bucket,
                s3_prefix=join_key(self.s3_prefix, model),
            )

        return ByModel(store_for)
