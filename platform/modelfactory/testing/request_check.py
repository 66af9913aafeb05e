"""The serving contract's request and response: holdout rows through the endpoint's request
model, the endpoint's own answer, and checks that the answer fits the task and the schemas."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import TYPE_CHECKING, Any

from modelfactory.errors import ProjectError
from modelfactory.serving.request_schema import PredictResponse, build_request_model, input_columns
from modelfactory.serving.routing import ModelSlot, Refresher, RouteTarget, missing_as_nan
from modelfactory.testing.contracts import REQUEST_ROWS
from modelfactory.testing.diagnostics import describe, pydantic_errors, quiet, source_line

if TYPE_CHECKING:
    import pandas as pd

    from modelfactory.project.loader import ModelProject

# Deferred imports: pandas and pydantic load only when the serving contract runs: this pytest11
# plugin loads in every pytest run of a project with modelfactory installed.

__all__ = [
    "RequestExample",
    "check_answer",
    "check_response",
    "null_problem",
    "request_example",
    "serve_example",
]


@dataclasses.dataclass(frozen=True)
class RequestExample:
    """A request for the serving contract: validated rows, the frame the endpoint makes of
    them, where the request schema comes from, and the columns it lets be null (all of them
    null in the last row)."""

    rows: list[dict[str, Any]]
    frame: pd.DataFrame
    source: str
    nullable: list[str]


def request_example(project: ModelProject, X_test: pd.DataFrame) -> RequestExample:
    """Holdout rows as an application would send them, through the endpoint's request model,
    and one more with every nullable column null: the schema lets a client send it whether or
    not the holdout has missing values, so the model must answer it."""
    import pandas as pd
    from pydantic import ValidationError

    schemas = project.shown("schemas.py")
    request_model = build_request_model(project)
    columns = input_columns(request_model)
    source = (
        "schemas.py:RequestRow"
        if hasattr(project.module("schemas"), "RequestRow")
        else "derived from schemas.py:FeatureSchema"
    )
    missing = [c for c in columns if c not in X_test.columns]
    if missing:
        raise ProjectError(
            f"{schemas}: the endpoint's request schema ({source}) needs "
            f"{', '.join(map(repr, missing))}, which build_features does not return"
        )
    holdout = X_test[columns]
    incomplete = holdout.isna().any(axis=1)  # sent as null: the nullable path first
    sample = pd.concat([holdout[incomplete], holdout[~incomplete]]).head(REQUEST_ROWS)
    body = '{"rows": ' + sample.to_json(orient="records", date_format="iso") + "}"
    try:
        parsed = request_model.model_validate_json(body)
    except ValidationError as exc:
        raise ProjectError(
            f"{schemas}: holdout rows from build_features do not pass the endpoint's request "
            f"schema ({source}): {pydantic_errors(exc)}"
        ) from None
    rows = [row if isinstance(row, dict) else row.model_dump() for row in parsed.rows]
    nullable = [column for column in columns if _accepts_null(request_model, rows[0], column)]
    if nullable:
        rows += _parsed(request_model, [{**rows[0], **dict.fromkeys(nullable)}])
    return RequestExample(rows, _request_frame(rows, columns), source, nullable)


def _parsed(request_model: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` through the request model as the endpoint parses them (from JSON)."""
    from pydantic_core import to_json

    parsed = request_model.model_validate_json(to_json({"rows": rows})).rows
    return [row if isinstance(row, dict) else row.model_dump() for row in parsed]


def _accepts_null(request_model: Any, row: dict[str, Any], column: str) -> bool:
    from pydantic import ValidationError

    try:
        _parsed(request_model, [{**row, column: None}])
    except ValidationError:
        return False
    return True


def _request_frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """The frame the endpoint predicts on: its nulls as NaN (serving.routing)."""
    import pandas as pd

    return missing_as_nan(pd.DataFrame.from_records(rows, columns=columns))


def null_problem(project: ModelProject, predict: Any, example: RequestExample) -> str | None:
    """Why the model failed, if a column the request schema lets be null is the cause: a
    complete row predicts, and the same row with that column null does not."""
    columns = list(example.frame.columns)
    complete = [row for row in example.rows if all(v is not None for v in row.values())]
    if not example.nullable or not complete:
        return None
    base = complete[0]
    try:
        predict(_request_frame([base], columns))
    except Exception:
        return None  # the model fails on complete rows too: not the nulls' doing
    missing = []
    for column in example.nullable:
        try:
            predict(_request_frame([{**base, column: None}], columns))
        except Exception as exc:
            missing.append((column, exc))
    if not missing:
        return None
    names = ", ".join(repr(column) for column, _ in missing)
    says = (
        "RequestRow accepts null for"
        if example.source == "schemas.py:RequestRow"
        else "FeatureSchema says"
    )
    are = "is" if len(missing) == 1 else "are"
    return (
        f"{project.shown('schemas.py')}: {says} column {names} {are} nullable, but "
        f"{project.shown('train.py')}'s model cannot predict with it missing "
        f"({describe(missing[0][1])}): impute it or make it non-nullable"
    )


def serve_example(
    project: ModelProject, registry: Any, version: str, example: RequestExample
) -> tuple[list[Any], list[float] | None]:
    """The endpoint's own answer: its refresher loads the version into a slot, as when the
    version becomes champion, and the loaded version predicts the validated rows."""
    rows, frame = example.rows, example.frame
    slot = ModelSlot(name=project.name, request_model=None, columns=list(frame.columns))
    refresher = Refresher(
        {project.name: slot},
        resolve=lambda: {project.name: RouteTarget(stable=version)},
        load=registry.load,
        executor=None,
    )
    with quiet("mlflow", "modelfactory"):
        refresher.refresh()
    if slot.route is None:
        raise ProjectError(
            f"{project.shown('train.py')}: the endpoint could not load the logged model "
            f"v{version}: {slot.problem or 'no route'}"
        )
    loaded = slot.route.stable
    try:
        answer = asyncio.run(loaded.predict(rows))
    except Exception as exc:
        failure = null_problem(project, loaded.estimator.predict, example)
        failure = failure or _endpoint_failure(
            project, loaded.estimator, frame, example.source, exc
        )
        raise ProjectError(failure) from exc
    return list(answer.predictions), answer.scores


def check_answer(
    project: ModelProject, values: list[Any], y_train: pd.Series, n_rows: int, where: str
) -> None:
    """One prediction per row, of the kind the task promises."""
    spec, train = project.spec, project.shown("train.py")
    if len(values) != n_rows:
        raise ProjectError(
            f"{train}: the logged model answered {len(values)} predictions for {n_rows} rows "
            f"{where}"
        )
    if spec.task == "regression":
        wrong = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float)]
        if wrong:
            raise ProjectError(
                f"{train}: model.yaml says task: regression, so predictions must be numbers; "
                f"the logged model answered {type(wrong[0]).__name__} values such as "
                f"{wrong[0]!r} {where}"
            )
        infinite = [v for v in values if not math.isfinite(v)]
        if infinite:
            raise ProjectError(
                f"{train}: predictions must be finite numbers; the logged model answered "
                f"{infinite[0]!r} {where}"
            )
        return
    labels = set(y_train.unique().tolist())
    unknown = [v for v in values if v not in labels]
    if unknown:
        raise ProjectError(
            f"{train}: model.yaml says task: classification, so predictions must be labels of "
            f"{spec.target!r} ({', '.join(map(repr, sorted(labels, key=str)))}); the logged "
            f"model answered {unknown[0]!r} {where}"
        )


def check_response(
    project: ModelProject, values: list[Any], scores: list[float] | None, version: str
) -> None:
    """The endpoint's answer passes PredictResponse and the project's ResponseRow, if any."""
    from pydantic import BaseModel, ValidationError

    train = project.shown("train.py")
    predictions = [
        {"prediction": value, "version": version, "score": scores[i] if scores else None}
        for i, value in enumerate(values)
    ]
    try:
        PredictResponse.model_validate(
            {"request_id": "contract-test", "model": project.name, "predictions": predictions}
        )
    except ValidationError as exc:
        raise ProjectError(
            f"{train}: the logged model's answer breaks the endpoint's response schema "
            f"(modelfactory.serving.request_schema.PredictResponse): {pydantic_errors(exc)}"
        ) from None
    row_model = getattr(project.module("schemas"), "ResponseRow", None)
    if row_model is None:
        return
    if not (isinstance(row_model, type) and issubclass(row_model, BaseModel)):
        raise ProjectError(
            f"{project.shown('schemas.py')}: ResponseRow must be a pydantic BaseModel "
            f"(one prediction: prediction, version, score), got {row_model!r}"
        )
    errors = []
    for i, prediction in enumerate(predictions):
        try:
            row_model.model_validate(prediction)
        except ValidationError as exc:
            errors.append(f"row {i}: {pydantic_errors(exc, limit=1)}")
    if errors:
        raise ProjectError(
            f"{train}: the logged model's predictions break schemas.py:ResponseRow: "
            + "; ".join(errors[:3])
            + (f"; and {len(errors) - 3} more rows" if len(errors) > 3 else "")
        )


def _endpoint_failure(
    project: ModelProject, estimator: Any, frame: pd.DataFrame, source: str, exc: Exception
) -> str:
    """Why the endpoint could not predict rows that mlflow.pyfunc could."""
    problem = f"{describe(exc)}{source_line(project, exc)}"
    trained_on = [str(c) for c in getattr(estimator, "feature_names_in_", [])]
    sent = [str(c) for c in frame.columns]
    if trained_on and trained_on != sent and sorted(trained_on) == sorted(sent):
        first = next(i for i, (a, b) in enumerate(zip(sent, trained_on, strict=True)) if a != b)
        return (
            f"{project.shown('schemas.py')}: the endpoint sends the request's columns in the "
            f"order of its request schema ({source}), but train saw build_features' order: "
            f"column {first} is {sent[first]!r} in the request and {trained_on[first]!r} in "
            f"training, and the model refuses the rows ({problem}); declare the schema's "
            "columns in build_features' order"
        )
    return (
        f"{project.shown('train.py')}: the endpoint's predict on {len(frame)} request rows "
        f"({source}) raised {problem}"
    )
