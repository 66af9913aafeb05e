"""Hands this model project to Model Factory: one Dagster code location."""

from modelfactory import project_definitions

defs = project_definitions(__file__)
