"""Decisions about a model's life: approval of a promotion, the canary judge."""
