"""The request and response bodies of one model's endpoint, as pydantic models.

A project may define `RequestRow` (a pydantic model of one input row) in its schemas.py.
Where it does not, the row model is derived from the pandera `FeatureSchema`: every feature
column except the target and the time column, with its type and the checks pydantic can
state (bounds, allowed values, string lengths). Types are strict, so `"12"` is not a price.
The same models give the OpenAPI docs at /docs and validate each request in one pass of
pydantic-core, with errors that name the row and the field.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from typing_extensions import TypedDict

from modelfactory.errors import ProjectError

if TYPE_CHECKING:
    from modelfactory.project.loader import ModelProject

__all__ = ["PredictResponse", "Prediction", "build_request_model", "input_columns"]

DEFAULT_MAX_ROWS = 1000


class Prediction(BaseModel):
    prediction: bool | int | float | str = Field(
        description="the predicted value; for a classifier one of the model's own class labels, "
        "of their type (a string label stays a string, a boolean a boolean)"
    )
    version: str = Field(description="the registered model version that produced this value")
    score: float | None = Field(
        default=None, description="probability of the positive class (binary classifiers)"
    )
    probabilities: dict[str, float] | None = Field(
        default=None,
        description="every class's probability by class label, as text (classifiers with "
        "predict_proba), e.g. {'Adelie': 0.9, 'Chinstrap': 0.07, 'Gentoo': 0.03}",
    )
    segment: str | None = Field(
        default=None, description="the segment whose champion answered (segmented models)"
    )


class PredictResponse(BaseModel):
    request_id: str
    model: str
    predictions: list[Prediction]


def build_request_model(project: ModelProject, max_rows: int = DEFAULT_MAX_ROWS) -> type[BaseModel]:
    """`{"rows": [<row>, ...]}` with the project's row model."""
    row = _project_row_model(project) or derive_row_model(project)
    title = "".join(part.title() for part in project.name.split("_"))
    return create_model(
        f"{title}PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        rows=(list[row], Field(min_length=1, max_length=max_rows)),  # type: ignore[valid-type]
    )


def input_columns(request_model: type[BaseModel]) -> list[str]:
    """The model's input columns, in the order the row model declares them."""
    row = request_model.model_fields["rows"].annotation.__args__[0]  # type: ignore[union-attr]
    if isinstance(row, type) and issubclass(row, BaseModel):
        return list(row.model_fields)
    return list(row.__annotations__)


def derive_row_model(project: ModelProject) -> type:
    """A TypedDict of the feature columns: validated rows arrive as plain dicts, ready for
    a DataFrame, with no per-row model objects to build and dump on the request path."""
    schema = project.schema("FeatureSchema")
    frame_schema = schema.to_schema() if hasattr(schema, "to_schema") else schema
    spec = project.spec
    dropped = {spec.target, spec.split.by}
    fields: dict[str, Any] = {}
    for name, column in frame_schema.columns.items():
        if name in dropped:
            continue
        kind = _python_type(project, name, column.dtype)
        constraints, kind = _constraints(column.checks, kind)
        if column.nullable:
            kind = kind | None
        fields[str(name)] = Annotated[kind, Field(**constraints)]
    if not fields:
        raise ProjectError(
            f"{project.shown('schemas.py')}: FeatureSchema has no input columns besides the "
            f"target {spec.target!r}; the endpoint needs at least one"
        )
    title = "".join(part.title() for part in project.name.split("_"))
    row = TypedDict(f"{title}Row", fields)  # type: ignore[operator]
    row.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return row


def _project_row_model(project: ModelProject) -> type[BaseModel] | None:
    row = getattr(project.module("schemas"), "RequestRow", None)
    if row is None:
        return None
    if not (isinstance(row, type) and issubclass(row, BaseModel)):
        raise ProjectError(
            f"{project.shown('schemas.py')}: RequestRow must be a pydantic BaseModel "
            f"(one input row), got {row!r}"
        )
    return row


def _python_type(project: ModelProject, column: str, dtype: Any) -> Any:
    text = str(dtype).lower()
    strict = Field(strict=True)
    if text.startswith("float"):
        # JSON allows 1e400 (infinity); no feature pipeline does.
        return Annotated[float, Field(strict=True, allow_inf_nan=False)]
    if text.startswith(("int", "uint")):
        return Annotated[int, strict]
    if text.startswith("bool"):
        return Annotated[bool, strict]
    if text.startswith("datetime"):
        return dt.datetime
    if text.startswith("date"):
        return dt.date
    if text in {"str", "string", "object"} or "string" in text:
        return Annotated[str, strict]
    raise ProjectError(
        f"{project.shown('schemas.py')}: FeatureSchema column {column!r} has type {dtype}, "
        "which the endpoint cannot accept from JSON; define a pydantic RequestRow in schemas.py"
    )


_BOUNDS = {
    "greater_than": ("gt", "min_value"),
    "greater_than_or_equal_to": ("ge", "min_value"),
    "less_than": ("lt", "max_value"),
    "less_than_or_equal_to": ("le", "max_value"),
}


def _constraints(checks: list[Any], kind: Any) -> tuple[dict[str, Any], Any]:
    """pydantic Field arguments for the pandera checks that have one; others are skipped."""
    found: dict[str, Any] = {}
    for check in checks:
        stats = check.statistics or {}
        if check.name in _BOUNDS:
            arg, key = _BOUNDS[check.name]
            found[arg] = stats[key]
        elif check.name == "in_range":
            found["ge" if stats.get("include_min", True) else "gt"] = stats["min_value"]
            found["le" if stats.get("include_max", True) else "lt"] = stats["max_value"]
        elif check.name == "isin":
            kind = Literal[tuple(stats["allowed_values"])]
        elif check.name == "equal_to":
            kind = Literal[stats["value"]]
        elif check.name == "str_length":
            if stats.get("exact_value") is not None:
                found["min_length"] = found["max_length"] = stats["exact_value"]
            else:
                if stats.get("min_value") is not None:
                    found["min_length"] = stats["min_value"]
                if stats.get("max_value") is not None:
                    found["max_length"] = stats["max_value"]
    return found, kind
