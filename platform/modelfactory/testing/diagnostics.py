"""How a contract failure reads: the project file and line to fix, schema problems
columns first, short exception and pydantic texts; and quiet libraries while steps run."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfactory.errors import ModelFactoryError, ProjectError
from modelfactory.ml.datasets import validate_frame

if TYPE_CHECKING:
    from pydantic import ValidationError

    from modelfactory.project.loader import ModelProject

# Deferred imports: scikit-learn loads only to explain a failed contract: this pytest11 plugin
# loads in every pytest run of a project with modelfactory installed.

__all__ = [
    "as_dict",
    "as_list",
    "blame",
    "describe",
    "pydantic_errors",
    "quiet",
    "require_fitted",
    "schema_problem",
    "shorten",
    "source_line",
    "validated",
]


def validated(project: ModelProject, frame: Any, function: str, schema_name: str) -> Any:
    """The coerced frame, or a ProjectError naming features.py and what broke the schema."""

    shown = project.shown("features.py")
    schema = project.schema(schema_name)
    outcome = validate_frame(schema, frame, what=f"{shown}: {function}")
    if outcome.passed:
        return outcome.frame
    problem = schema_problem(frame, schema, schema_name, function, outcome)
    raise ProjectError(f"{shown}: {function} {problem}")


def schema_problem(frame: Any, schema: Any, name: str, function: str, outcome: Any) -> str:
    """What broke the schema, columns first: a missing column explains its other failures."""
    frame_schema = schema.to_schema() if hasattr(schema, "to_schema") else schema
    declared = {
        str(key): column
        for key, column in frame_schema.columns.items()
        if not getattr(column, "regex", False)
    }
    missing = [c for c, column in declared.items() if column.required and c not in frame.columns]
    if missing:
        verb = "dropped" if function == "build_features" else "returned no"
        plural = "s" if len(missing) > 1 else ""
        return (
            f"{verb} column{plural} {', '.join(map(repr, missing))} required by schemas.py:{name}"
        )
    extra = [str(c) for c in frame.columns if str(c) not in declared]
    if frame_schema.strict is True and extra:
        return (
            f"returned column{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
            f"that schemas.py:{name} does not declare (it is strict)"
        )
    return f"output breaks schemas.py:{name}: {outcome.describe(limit=3)}"


def require_fitted(estimator: Any, shown: str) -> None:
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(estimator, BaseEstimator):
        return  # not scikit-learn: its predict on the training rows tells
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise ProjectError(
            f"{shown}: train returned an unfitted {type(estimator).__name__}; fit it before "
            "returning it (`return model.fit(X, y)`)"
        ) from None


@contextlib.contextmanager
def blame(project: ModelProject, filename: str, what: str) -> Iterator[None]:
    """An exception from the project's code becomes a ProjectError naming its file and line."""
    try:
        yield
    except ModelFactoryError:
        raise
    except Exception as exc:
        raise ProjectError(
            f"{project.shown(filename)}: {what} raised {describe(exc)}{source_line(project, exc)}"
        ) from exc


def source_line(project: ModelProject, exc: BaseException) -> str:
    """` (at features.py:12: <the line>)`: the deepest frame in the project's own files."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        if path.is_relative_to(project.root):
            line = (frame.line or "").strip()
            shown = project.shown(str(path.relative_to(project.root)))
            return f" (at {shown}:{frame.lineno}: {line})"
    return ""


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {shorten(text[0], 300)}" if text else type(exc).__name__


def pydantic_errors(exc: ValidationError, limit: int = 3) -> str:
    errors = exc.errors(include_url=False)
    parts = [
        f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {shorten(repr(e['input']), 80)})"
        for e in errors[:limit]
    ]
    more = len(errors) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_list(predictions: Any) -> list[Any]:
    """A pyfunc answer (array, Series, one-column DataFrame, list) as plain Python values."""
    if hasattr(predictions, "columns") and len(predictions.columns) == 1:
        predictions = predictions.iloc[:, 0]
    if hasattr(predictions, "tolist"):
        return list(predictions.tolist())
    return list(predictions)


def as_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Only warnings and errors from these loggers while a block runs, and no deprecation
    warnings (MLflow's own use of SQLAlchemy is nothing for a project to fix)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
