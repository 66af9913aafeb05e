"""The local Dagster instance as a store: its home (DAGSTER_HOME), the segments it has
discovered (dynamic partitions), and champion moves made outside a run, reported to it so
the UI shows them.

The endpoint, the CLI and the sensors read the same segments through here, without loading
any asset definitions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from modelfactory.project.loader import find_repo_root
from modelfactory.project.segments import split_unit
from modelfactory.project.spec import ModelSpec
from modelfactory.stores.home import audit_log, local_home

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from modelfactory.stores.registry import AliasMove

__all__ = [
    "each_segment",
    "local_instance",
    "prepare_dagster_home",
    "record_alias_move",
    "segment_partitions_name",
    "segments_of",
]


def segment_partitions_name(model: str) -> str:
    """The dynamic partitions of a model whose segments are discovered."""
    return f"{model}_segments"


def segments_of(spec: ModelSpec, instance: DagsterInstance | None = None) -> list[str]:
    """The segments a model has now: listed in its spec, or discovered so far (needs the
    Dagster instance that keeps them)."""
    if spec.segments is None:
        return []
    if not spec.segments.discovered:
        return list(spec.segments.values)
    if instance is None:
        raise ValueError("discovered segments are kept by the Dagster instance; pass it")
    return sorted(instance.get_dynamic_partitions(segment_partitions_name(spec.name)))


def each_segment(spec: ModelSpec, instance: DagsterInstance | None = None) -> list[str | None]:
    """What a sensor, schedule or command goes through: [None] for an unsegmented model (the
    model as a whole), else its segments, which may be none yet when they are discovered."""
    if spec.segments is None:
        return [None]
    return list(segments_of(spec, instance if spec.segments.discovered else None))


def prepare_dagster_home() -> Path:
    """Point DAGSTER_HOME at MODELFACTORY_HOME/dagster with the repo's dagster.yaml in it.

    Without DAGSTER_HOME Dagster keeps runs in a temporary folder that vanishes on exit.
    """
    home = local_home().ensure()
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or home.dagster_home)
    dagster_home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    config = find_repo_root() / "dagster.yaml"
    if config.is_file() and not (dagster_home / "dagster.yaml").exists():
        shutil.copyfile(config, dagster_home / "dagster.yaml")
    return dagster_home


def local_instance() -> DagsterInstance:
    """The instance `modelfactory dev` serves, for runs and reads outside a code location."""
    from dagster import DagsterInstance  # dagster loads when used: the CLI starts without it

    prepare_dagster_home()
    return DagsterInstance.get()


def record_alias_move(move: AliasMove, instance: DagsterInstance | None = None) -> None:
    """Record a champion move made outside a run (a rollback) in the audit trail, and tell
    Dagster, so the UI shows it.

    An observation, not a materialization: the asset's stored value is not rewritten, but its
    event history in the UI says which version serves now, and why.
    """
    from dagster import AssetKey, AssetObservation  # as in local_instance: not at start-up

    audit_log().record_move(move)
    model, segment = split_unit(move.model)  # a segment's move: its partition
    (instance or local_instance()).report_runless_asset_event(
        AssetObservation(
            asset_key=AssetKey([model, "champion"]),
            partition=segment,
            description=f"{move.event}: champion v{move.from_version} -> v{move.to_version}",
            metadata={
                "champion_version": move.to_version,
                "moved_from": move.from_version or "none",
                "event": move.event,
                "actor": move.actor,
                "reason": move.reason,
            },
        )
    )
