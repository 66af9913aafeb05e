"""Model Factory: a model written as a few plain files becomes a production ML system on Dagster.

A folder of model projects becomes one Dagster code location with one call (its
definitions.py; workspace.yaml points at it):

    from modelfactory import fleet_definitions

    defs = fleet_definitions(Path(__file__).parent)

`project_definitions(__file__)` in a project's own folder makes a location of that one model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import Definitions

__all__ = ["fleet_definitions", "project_definitions"]


def fleet_definitions(folder: str | Path, *, include: Sequence[str] | None = None) -> Definitions:
    """Every model project under `folder` in one code location, a broken one as its error."""
    from modelfactory.orchestration.fleet import (
        fleet_definitions as definitions,  # dagster: only when asked
    )

    return definitions(folder, include=include)


def project_definitions(definitions_file: str | Path) -> Definitions:
    """Definitions (one code location) for the model project whose folder holds this file."""
    # deferred: loads dagster; `import modelfactory` (run by every submodule's import) stays light
    from modelfactory.orchestration.definitions import build_definitions
    from modelfactory.project.loader import load_project

    return build_definitions(load_project(Path(definitions_file).resolve().parent))
