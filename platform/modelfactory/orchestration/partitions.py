"""How a segmented model's assets are partitioned: one Dagster partition per segment, listed in
model.yaml or discovered in the raw data (project/segments.py holds the naming rules)."""

from __future__ import annotations

import re
from typing import Any

from dagster import DynamicPartitionsDefinition, PartitionsDefinition, StaticPartitionsDefinition

from modelfactory.errors import ProjectError
from modelfactory.project.loader import ModelProject
from modelfactory.project.spec import SEGMENT_PATTERN, ModelSpec
from modelfactory.stores.home import local_home
from modelfactory.stores.instance import segment_partitions_name

__all__ = ["discover_segments", "partitions_def"]


def partitions_def(spec: ModelSpec) -> PartitionsDefinition | None:
    """Static partitions for listed segments, dynamic ones for discovered; None unsegmented."""

    if spec.segments is None:
        return None
    if spec.segments.discovered:
        return DynamicPartitionsDefinition(name=segment_partitions_name(spec.name))
    return StaticPartitionsDefinition(list(spec.segments.values))


def discover_segments(project: ModelProject) -> list[str]:
    """The segments in the project's raw data now: the values of `segments.by`."""

    by = project.spec.segments.by if project.spec.segments else None
    if by is None:
        return []
    what = f"{project.shown('features.py')}: load_raw"
    frame: Any = project.function("features", "load_raw")(local_home().data(project.name))
    if by not in frame.columns:
        raise ProjectError(f"{what}: has no column {by!r}, which model.yaml segments.by names")
    values = sorted(frame[by].dropna().astype(str).unique())
    bad = [v for v in values if not re.match(SEGMENT_PATTERN, v)]
    if bad:
        raise ProjectError(
            f"{what}: values of {by!r} cannot name a segment (1-40 lower-case letters, "
            f"digits or '_'; lower-case them in load_raw): {bad[:10]}"
        )
    return values
