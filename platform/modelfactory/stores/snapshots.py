"""Training data snapshots, content-addressed: every candidate's split (its training and
holdout rows) is kept under the content hash the version records, so the version can be
retrained after the raw data has moved on (`modelfactory reproduce`).

A snapshot is read back only if it still hashes to what the version recorded: a missing or
changed file is an error that says so, never a silent retrain on other data. Snapshots live
under MODELFACTORY_HOME/snapshots locally and under the production prefix in S3; the same
data trained twice is kept once.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from modelfactory.errors import ModelFactoryError
from modelfactory.ml.datasets import content_hash
from modelfactory.stores.s3_files import is_s3_url, s3_resource, split_s3_url, upload

if TYPE_CHECKING:
    import pandas as pd

# Deferred imports: pandas and botocore load with the first snapshot written or read.

__all__ = ["SnapshotError", "keep", "load"]


class SnapshotError(ModelFactoryError):
    """A version's training data snapshot is missing or no longer what it recorded."""


def keep(frame: pd.DataFrame, root: str, unit: str, data_hash: str) -> str:
    """Store `frame` (whose content hash is `data_hash`) once; returns where it is."""
    location = f"{root.rstrip('/')}/{unit}/{data_hash}.parquet"
    if is_s3_url(location):
        _keep_in_s3(frame, location)
        return location
    path = Path(location)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as out:
            partial = Path(out.name)  # one per writer: two runs on the same data never mix
        frame.to_parquet(partial, index=False)
        partial.replace(path)  # never a half-written snapshot under its hash
    return location


def load(location: str, expected_hash: str, what: str) -> pd.DataFrame:
    """The snapshot at `location`, checked against the content hash `what` recorded."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as scratch:
        path = _fetch(location, Path(scratch)) if is_s3_url(location) else Path(location)
        if path is None or not path.is_file():
            raise SnapshotError(
                f"{what}: its training data snapshot {location} is missing, so it cannot be "
                "retrained on the data it was trained on"
            )
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow's errors for a truncated or foreign file vary
            raise SnapshotError(
                f"{what}: the training data snapshot {location} cannot be read "
                f"({type(exc).__name__}: {exc})"
            ) from None
    found = content_hash(frame)
    if found != expected_hash:
        raise SnapshotError(
            f"{what}: the training data snapshot {location} has changed (content hash "
            f"{found}, recorded {expected_hash}); it is not the data the version was trained on"
        )
    return frame


def _keep_in_s3(frame: pd.DataFrame, url: str) -> None:
    bucket, key = split_s3_url(url)
    found = s3_resource().get_client().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    if found.get("KeyCount", 0):
        return
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "snapshot.parquet"
        frame.to_parquet(path, index=False)
        upload(path, url, content_type="application/vnd.apache.parquet")


def _fetch(url: str, folder: Path) -> Path | None:
    """Download the snapshot; None when there is no such object."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3_url(url)
    target = folder / "snapshot.parquet"
    try:
        s3_resource().get_client().download_file(bucket, key, str(target))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise SnapshotError(f"the snapshot {url} cannot be fetched from S3: {exc}") from None
    except BotoCoreError as exc:  # no credentials, no connection
        raise SnapshotError(f"the snapshot {url} cannot be fetched from S3: {exc}") from None
    return target
