"""Every model project in this folder as one Dagster code location (workspace.yaml).

A project that fails to load shows as its model's error (`<model>/project`); the others run.
"""

from pathlib import Path

from modelfactory import fleet_definitions

defs = fleet_definitions(Path(__file__).parent)
