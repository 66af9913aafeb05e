"""Asset metadata shared by the asset factories: what the UI shows about a DataFrame."""

from typing import Any

from dagster import MetadataValue, TableColumn, TableSchema

from modelfactory.ml import datasets

__all__ = ["frame_metadata"]


def frame_metadata(frame: Any, *, preview: bool = True) -> dict[str, Any]:
    """Row count, column schema and content hash (and a preview): the same on every asset."""
    metadata: dict[str, Any] = {
        "dagster/row_count": len(frame),
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()]
        ),
        "data_hash": datasets.content_hash(frame),
    }
    if preview:
        metadata["preview"] = MetadataValue.md(frame.head(10).to_markdown(index=False))
    return metadata
