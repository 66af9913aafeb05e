"""Files the production profile keeps in S3: reports and archived inference logs go up,
label files come down.

Everything goes through dagster-aws's `S3Resource`, so credentials, `AWS_ENDPOINT_URL` (an
S3-compatible store such as MinIO) and `AWS_PROFILE` work as they do for Dagster's own S3
IO manager. One difference is smoothed over: boto3 reads its region from
`AWS_DEFAULT_REGION` only, while ECS, Lambda and most people set `AWS_REGION`; both work here.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource

# Deferred imports: dagster-aws (boto3) loads only for an s3:// location; local files need none
# of it.

__all__ = ["is_s3_url", "s3_resource", "split_s3_url", "sync_down", "upload"]

_MANIFEST = ".s3-etags.json"  # which object version each downloaded file is


def is_s3_url(location: str) -> bool:
    return location.startswith("s3://")


def split_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> (`bucket`, `some/prefix`)."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key.strip("/")


def join_key(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part.strip("/"))


def s3_resource() -> S3Resource:
    from dagster_aws.s3 import S3Resource

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return S3Resource(region_name=region)


def upload(path: Path, url: str, content_type: str | None = None) -> str:
    """Upload one file to `url` (s3://bucket/key); returns the URL."""
    bucket, key = split_s3_url(url)
    extra = {"ContentType": content_type} if content_type else None
    s3_resource().get_client().upload_file(str(path), bucket, key, ExtraArgs=extra)
    return url


def sync_down(prefix_url: str, folder: Path, suffixes: tuple[str, ...]) -> Path:
    """Mirror the objects under `prefix_url` whose names end in `suffixes` into `folder`.

    Only new or changed objects (by ETag) are downloaded, and a downloaded file keeps the
    object's LastModified as its mtime, so an unchanged prefix leaves the folder exactly as
    it was: callers that fingerprint the folder by name, size and mtime see no change. A file
    whose object is gone is removed. Nested keys become `a__b.csv`, keeping their order.
    """
    client = s3_resource().get_client()
    bucket, prefix = split_s3_url(prefix_url)
    prefix = f"{prefix}/" if prefix else ""
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / _MANIFEST
    manifest: dict[str, str] = (
        json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    )
    present: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            if not relative.lower().endswith(suffixes):
                continue
            name = relative.replace("/", "__")
            present[name] = item["ETag"]
            target = folder / name
            if manifest.get(name) != item["ETag"] or not target.is_file():
                _download(client, bucket, item["Key"], target, item["LastModified"])
    for stale in set(manifest) - set(present):
        (folder / stale).unlink(missing_ok=True)
    written = manifest_path.with_name(f"{_MANIFEST}.{os.getpid()}.{threading.get_ident()}")
    written.write_text(json.dumps(present, sort_keys=True))
    written.replace(manifest_path)
    return folder


def _download(client, bucket: str, key: str, target: Path, modified: datetime) -> None:
    # never a half-written label file, nor two writers on one temporary file
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    client.download_file(bucket, key, str(partial))
    stamp = modified.timestamp()
    os.utime(partial, (stamp, stamp))
    partial.replace(target)
