"""Dagster only here: assets per step, checks, sensors, schedules, run tags, resources,
and each project's definitions."""
