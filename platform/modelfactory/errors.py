"""Errors Model Factory raises on purpose, each saying what went wrong, where, and how to fix it.

    ModelFactoryError
    ├── SpecError            model.yaml is missing, unreadable or invalid
    ├── ProjectError         a model project lacks a file or function, or a function misbehaves
    ├── DataValidationError  a DataFrame broke its pandera schema
    ├── RegistryError        the model registry cannot do what was asked (no champion, ...)
    ├── LabelsError          late label files cannot be read or lack a column
    ├── ProfileError         the environment chooses a profile it does not fully configure
    └── DemoError            a demo story could not go on (what happened, what to try)

Anything else escaping the platform is a bug, not a user mistake.
"""

from __future__ import annotations

__all__ = [
    "DataValidationError",
    "DemoError",
    "LabelsError",
    "ModelFactoryError",
    "ProfileError",
    "ProjectError",
    "RegistryError",
    "SpecError",
]


class ModelFactoryError(Exception):
    """Base of every error the platform raises deliberately."""


class SpecError(ModelFactoryError):
    """A model.yaml is missing, is not valid YAML, or breaks the spec."""


class ProjectError(ModelFactoryError):
    """A model project is incomplete, or one of its functions returned the wrong thing."""


class DataValidationError(ModelFactoryError):
    """Data failed its pandera schema."""


class RegistryError(ModelFactoryError):
    """The model registry cannot carry out a request."""


class DemoError(ModelFactoryError):
    """`modelfactory demo` could not tell its story; the message says which step stopped."""


class LabelsError(ModelFactoryError):
    """Late label files cannot be read: a missing column, a value of the wrong type."""


class ProfileError(ModelFactoryError):
    """MODELFACTORY_PROFILE is unknown, or the production profile lacks a variable it needs."""
