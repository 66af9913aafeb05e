"""One model project's definitions: a fleet of one (fleet.models_definitions).

Tests and the CLI's in-process runs build a single model this way; a code location holds a
folder of them (fleet.fleet_definitions).
"""

from dagster import Definitions

from modelfactory.orchestration.fleet import models_definitions
from modelfactory.project.loader import ModelProject

__all__ = ["build_definitions"]


def build_definitions(project: ModelProject) -> Definitions:
    """One model project's assets, jobs, schedules, sensors and resources."""
    return models_definitions([project])
