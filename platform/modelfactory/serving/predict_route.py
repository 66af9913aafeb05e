"""`POST /models/<name>/predict`: from a request body to predictions, captured.

The path of one request: size check, one pydantic-core pass over the JSON body, pick a
version from the model's current route, predict in a micro-batch, append the record to the
capture spool, answer. A canary that fails is answered for by the stable version; the
failure is captured, so the canary sensor rolls it back, and the client never sees it.

A segmented model (model.yaml `segments`) has one slot per segment, each with its own
champion and rollout. Its rows are grouped by the segment column, each group is answered by
its segment's route (concurrently, so the groups share batches with other requests), and the
predictions come back in the request's order, each naming its segment and version. Each
segment's record keeps the rows' places in the request, so late labels join by
`request_id` and `row_index` as for any model.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from pydantic_core import to_json

from modelfactory.serving.batching import PredictResult
from modelfactory.serving.metrics import ServingMetrics
from modelfactory.serving.request_schema import PredictResponse
from modelfactory.serving.routing import LoadedVersion, ModelSlot, Route

__all__ = ["PredictRoute", "add_predict_route", "error"]

Capture = Callable[[ModelSlot, dict[str, Any]], None]
_NAN = re.compile(r"\bNaN\b", re.IGNORECASE)


@dataclass(frozen=True)
class PredictRoute:
    """One model's endpoint: its slot, or one slot per segment and the column naming it."""

    model: str
    request_model: Any  # the body's pydantic model, shared by every segment's slot
    slots: dict[str | None, ModelSlot]  # by segment; {None: slot} for an unsegmented model
    segment_column: str | None = None


def add_predict_route(
    app: FastAPI,
    route: PredictRoute,
    *,
    max_body_bytes: int,
    metrics: ServingMetrics,
    capture: Capture,
    background: set[asyncio.Task],
) -> None:
    name, slots = route.model, route.slots
    validate = route.request_model.model_validate_json

    async def parsed_rows(request: Request) -> list[dict[str, Any]] | Response:
        """The validated rows, or the 4xx that answers instead."""
        body = await _read_body(request, max_body_bytes)
        if body is None:
            metrics.rejected.labels(name, "too_large").inc()
            return error(413, f"request body is over the limit of {max_body_bytes} bytes")
        try:
            parsed = validate(body)
        except ValidationError as exc:
            metrics.rejected.labels(name, "invalid").inc()
            return _validation_error(exc)
        rows = parsed.rows
        if rows and not isinstance(rows[0], dict):  # a project's own pydantic RequestRow
            rows = [row.model_dump() for row in rows]
        return rows

    async def answer(
        slot: ModelSlot,
        served: Route,
        rows: list[dict[str, Any]],
        request: _Request,
        places: list[int] | None,
    ) -> list[dict[str, Any]] | Response:
        """Predictions of `rows` by the slot's route, captured; or the 503 answering instead."""
        version, role = served.pick()

        def failed(version: LoadedVersion, role: str, exc: Exception) -> dict[str, Any]:
            ms = (time.perf_counter() - request.started) * 1000
            return _record(request, version, role, rows, places, ms, exc)

        def unavailable(record: dict[str, Any]) -> Response:
            capture(slot, record)
            metrics.requests.labels(
                slot.name, record["model_version"], record["role"], "error"
            ).inc()
            message = (
                f"{slot.name} v{record['model_version']} failed to predict ({record['error']})"
            )
            return error(503, message, request_id=request.id)

        def refused(version: LoadedVersion, exc: Exception) -> Response | None:
            """A 422 for nulls the model cannot take (the request's doing), else None."""
            missing = _missing_values(rows, exc)
            if missing is None:
                return None
            row, columns = missing
            metrics.rejected.labels(name, "missing_values").inc()
            where = f"rows[{places[row] if places else row}].{columns[0]}"
            return error(
                422,
                f"{where}: null, but {slot.name} v{version.version} cannot predict with "
                f"{', '.join(columns)} missing (its model has no imputer for them); send values",
                request_id=request.id,
            )

        canary_failure: dict[str, Any] | None = None
        try:
            answered = await version.predict(rows)
        except Exception as exc:
            if role != "canary":
                return refused(version, exc) or unavailable(failed(version, role, exc))
            # The stable version answers instead. If it fails too, the rows are at fault (or
            # the model is), not the canary: only then does the failure not count against it.
            canary_failure = failed(version, role, exc)
            version, role = served.stable, "stable"
            try:
                answered = await version.predict(rows)
            except Exception as again:
                return refused(version, again) or unavailable(failed(version, role, again))
        if canary_failure is not None:
            capture(slot, canary_failure)
            version_label = canary_failure["model_version"]
            metrics.requests.labels(slot.name, version_label, "canary", "error").inc()
        latency = time.perf_counter() - request.started
        record = _record(request, version, role, rows, places, latency * 1000, answered=answered)
        capture(slot, record)
        metrics.requests.labels(slot.name, version.version, role, "ok").inc()
        metrics.latency.labels(slot.name, version.version).observe(latency)
        metrics.rows.labels(slot.name, version.version).inc(len(rows))
        if served.shadow is not None:
            task = asyncio.create_task(_shadow(slot, served.shadow, rows, request, places, capture))
            background.add(task)
            task.add_done_callback(background.discard)
        return _predictions(answered, version.version)

    async def predict(http: Request) -> Response:
        request = _Request(id=uuid.uuid4().hex, received_at=datetime.now(UTC))
        for slot in slots.values():
            slot.arriving += 1  # each batcher waits a moment for requests that are this far
        try:
            rows = await parsed_rows(http)
        finally:
            for slot in slots.values():
                slot.arriving -= 1
        if isinstance(rows, Response):
            return rows
        groups = _groups(rows, route.segment_column)
        unknown = [segment for segment in groups if segment not in slots]
        if unknown:
            metrics.rejected.labels(name, "unknown_segment").inc()
            first = groups[unknown[0]][0]
            return error(
                422,
                f"rows[{first}].{route.segment_column}: {name} has no segment "
                f"{unknown[0]!r}; its segments are {', '.join(map(str, slots))}",
            )
        waiting = {s: slots[s] for s in groups if slots[s].route is None}
        if waiting:
            metrics.rejected.labels(name, "not_ready").inc()
            slot = next(iter(waiting.values()))
            return error(503, f"{slot.name} is not ready: {slot.problem or 'loading'}")
        if route.segment_column is None:  # the hot path: one group, no task to schedule
            answers = [await answer(slots[None], slots[None].route, rows, request, None)]  # type: ignore[arg-type]
        else:
            answers = await asyncio.gather(
                *(
                    answer(
                        slots[segment],
                        slots[segment].route,  # type: ignore[arg-type]
                        [rows[i] for i in places],
                        request,
                        places,
                    )
                    for segment, places in groups.items()
                )
            )
        refusal = next((a for a in answers if isinstance(a, Response)), None)
        if refusal is not None:
            return refusal
        predictions: list[dict[str, Any]] = [{}] * len(rows)
        for (segment, places), answered in zip(groups.items(), answers, strict=True):
            for place, prediction in zip(places, answered, strict=True):  # type: ignore[arg-type]
                predictions[place] = {**prediction, "segment": segment} if segment else prediction
        body = {"request_id": request.id, "model": name, "predictions": predictions}
        return Response(
            to_json(body), media_type="application/json", headers={"x-request-id": request.id}
        )

    schema = route.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
    app.state.row_schemas.update(schema.pop("$defs", {}))
    app.add_api_route(
        f"/models/{name}/predict",
        predict,
        methods=["POST"],
        tags=["models"],
        summary=f"Predict with {name}"
        + (
            f", by the champion of each row's {route.segment_column}"
            if route.segment_column
            else ""
        ),
        response_model=PredictResponse,
        responses={
            400: {"description": "The body is not JSON"},
            404: {"description": "Unknown model"},
            413: {"description": "The body is too large"},
            422: {
                "description": "A row breaks the model's request schema, names no segment, or "
                "holds a null the model cannot predict with"
            },
            503: {"description": "The model has no version loaded, or its prediction failed"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }
        },
    )


@dataclass(frozen=True)
class _Request:
    id: str
    received_at: datetime
    started: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "started", time.perf_counter())


def _groups(rows: list[dict[str, Any]], column: str | None) -> dict[str | None, list[int]]:
    """Row places by segment, in order of first appearance; everything under None if the
    model has no segments."""
    if column is None:
        return {None: list(range(len(rows)))}
    groups: dict[str | None, list[int]] = {}
    for place, row in enumerate(rows):
        groups.setdefault(str(row[column]), []).append(place)
    return groups


async def _shadow(
    slot: ModelSlot,
    version: LoadedVersion,
    rows: list[dict[str, Any]],
    request: _Request,
    places: list[int] | None,
    capture: Capture,
) -> None:
    """Score a copy of an answered request with the version in shadow; capture, never answer."""
    started = time.perf_counter()
    try:
        answered = await version.predict(rows)
    except Exception as exc:
        ms = (time.perf_counter() - started) * 1000
        capture(slot, _record(request, version, "shadow", rows, places, ms, exc))
        return
    ms = (time.perf_counter() - started) * 1000
    capture(slot, _record(request, version, "shadow", rows, places, ms, answered=answered))


def _missing_values(rows: list[dict[str, Any]], exc: Exception) -> tuple[int, list[str]] | None:
    """(the first row with a null, the columns holding null) when the model's error is
    scikit-learn refusing missing values ("Input X contains NaN") and the request sent nulls
    (the request schema lets only nullable columns be null); None for any other failure."""
    if not isinstance(exc, ValueError) or not _NAN.search(str(exc)):
        return None
    columns = list(dict.fromkeys(c for row in rows for c, v in row.items() if v is None))
    if not columns:
        return None
    first = next(i for i, row in enumerate(rows) if None in row.values())
    return first, columns


def _predictions(answered: PredictResult, version: str) -> list[dict[str, Any]]:
    """The response's predictions: each the model's own label (or value), the version, and
    for a classifier every class's probability (and the positive class's, as `score`)."""
    scores, probabilities = answered.scores, answered.probabilities
    return [
        {
            "prediction": value,
            "version": version,
            "score": scores[i] if scores else None,
            **({"probabilities": probabilities[i]} if probabilities else {}),
        }
        for i, value in enumerate(answered.predictions)
    ]


def _record(
    request: _Request,
    version: LoadedVersion,
    role: str,
    rows: list[dict[str, Any]],
    places: list[int] | None,
    latency_ms: float,
    exc: Exception | None = None,
    *,
    answered: PredictResult | None = None,
) -> dict[str, Any]:
    record = {
        "request_id": request.id,
        "received_at": request.received_at.replace(tzinfo=None).isoformat(),  # UTC
        "model_version": version.version,
        "role": role,
        "status": "error" if exc else "ok",
        "error": f"{type(exc).__name__}: {exc}" if exc else None,
        "latency_ms": round(latency_ms, 3),
        "inputs": rows,
    }
    if places is not None:  # a segment's rows: where each stood in the request
        record["row_indices"] = places
    if answered is not None:
        record["outputs"], record["scores"] = answered.predictions, answered.scores
        record["probabilities"] = answered.probabilities
    return record


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is over `limit` (checked before reading where declared)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _validation_error(exc: ValidationError) -> JSONResponse:
    problems = []
    for problem_error in exc.errors(include_url=False):
        if problem_error["type"] == "json_invalid":
            detail = problem_error["ctx"].get("error", problem_error["msg"])
            return error(400, f"body is not valid JSON: {detail}")
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem_error["loc"])
        field = field.lstrip(".") or "body"
        problem = {"field": field, "message": problem_error["msg"]}
        value = problem_error["input"]
        if problem_error["type"] != "missing" and isinstance(value, (str, int, float, bool)):
            # JSON has no infinity (1e400 parses as one): say it as text
            finite = not isinstance(value, float) or math.isfinite(value)
            problem["got"] = value if finite else str(value)
        problems.append(problem)
    first = problems[0]
    got = f", got {first['got']!r}" if "got" in first else ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return error(422, f"{first['field']}: {first['message']}{got}{more}", errors=problems)


def error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)
