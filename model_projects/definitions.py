"""Every model project in this folder as one Dagster code location (workspace.yaml), through
the component its defs.yaml declares (modelfactory.ModelProjects), loaded as `dg` loads it.

A project that fails to load shows as its model's error (`<model>/project`); the others run.
"""

from pathlib import Path

from modelfactory import load_defs_folder

defs = load_defs_folder(Path(__file__).parent)
