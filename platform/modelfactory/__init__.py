"""Model Factory: a model written as a few plain files becomes a production ML system on Dagster.

A model project's definitions.py hands itself over with one call:

    from modelfactory import project_definitions

    defs = project_definitions(__file__)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import Definitions

__all__ = ["project_definitions"]


def project_definitions(definitions_file: str | Path) -> Definitions:
    """Definitions (one code location) for the model project whose folder holds this file."""
    # deferred: loads dagster; `import modelfactory` (run by every submodule's import) stays light
    from modelfactory.orchestration.definitions import build_definitions
    from modelfactory.project.loader import load_project

    return build_definitions(load_project(Path(definitions_file).resolve().parent))
