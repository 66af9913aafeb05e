"""Model Factory: a model written as a few plain files becomes a production ML system on Dagster.

A folder of model projects becomes one Dagster code location through a defs.yaml naming the
component type `modelfactory.ModelProjects` (or `modelfactory.ModelProject`, one model), in
any `dg` project; outside one, its definitions.py loads that defs.yaml (workspace.yaml points
at it):

    from modelfactory import load_defs_folder

    defs = load_defs_folder(Path(__file__).parent)

`fleet_definitions(folder)` builds the same location in Python; `project_definitions(__file__)`
in a project's own folder makes a location of that one model.

Importing this package stays light: dagster loads only when one of these is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster import Definitions

    from modelfactory.orchestration.component import ModelProject, ModelProjects

__all__ = [
    "ModelProject",
    "ModelProjects",
    "fleet_definitions",
    "load_defs_folder",
    "project_definitions",
]

_COMPONENTS = ("ModelProject", "ModelProjects")  # dagster_dg_cli.registry_modules: pyproject


def __getattr__(name: str) -> Any:
    """The component types, imported when Dagster (defs.yaml's `type:`, dg) asks for them."""
    if name in _COMPONENTS:
        from modelfactory.orchestration import component  # dagster: only when asked

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # dg lists a registry module's component types by dir(): name the lazy ones too
    return sorted({*globals(), *_COMPONENTS})


def fleet_definitions(folder: str | Path, *, include: Sequence[str] | None = None) -> Definitions:
    """Every model project under `folder` in one code location, a broken one as its error."""
    from modelfactory.orchestration.fleet import (
        fleet_definitions as definitions,  # dagster: only when asked
    )

    return definitions(folder, include=include)


def load_defs_folder(folder: str | Path) -> Definitions:
    """The code location `folder`'s defs.yaml declares (a Model Factory component), loaded by
    Dagster's component loader: what `dg` would load, for a folder outside a dg project."""
    from modelfactory.orchestration.component import (
        load_defs_folder as load,  # dagster: only when asked
    )

    return load(folder)


def project_definitions(definitions_file: str | Path) -> Definitions:
    """Definitions (one code location) for the model project whose folder holds this file."""
    # deferred: loads dagster; `import modelfactory` (run by every submodule's import) stays light
    from modelfactory.orchestration.definitions import build_definitions
    from modelfactory.project.loader import load_project

    return build_definitions(load_project(Path(definitions_file).resolve().parent))
