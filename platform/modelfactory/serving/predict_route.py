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
from modelfactory.serving.residency import LoadPending
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
    """Add `POST /models/<name>/predict` for one model, and its row models to the OpenAPI."""
    predictor = _Predictor(route, max_body_bytes, metrics, capture, background)
    schema = route.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
    app.state.row_schemas.update(schema.pop("$defs", {}))
    app.add_api_route(
        f"/models/{route.model}/predict",
        predictor.predict,
        methods=["POST"],
        tags=["models"],
        summary=f"Predict with {route.model}"
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
            503: {
                "description": "The model has no version loaded, is still loading (with "
                "Retry-After), or its prediction failed"
            },
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }
        },
    )


@dataclass(frozen=True)
class _Predictor:
    """One model's request path. `predict` is the route's endpoint; the other methods are
    its steps, each answering with the 4xx or 503 that ends a request early."""

    route: PredictRoute
    max_body_bytes: int
    metrics: ServingMetrics
    capture: Capture
    background: set[asyncio.Task]

    async def predict(self, http: Request) -> Response:
        # No docstring: FastAPI would publish it as the operation's OpenAPI description.
        # Rows in, each answered by its slot's route (per segment, concurrently), in order.
        request = _Request(id=uuid.uuid4().hex, received_at=datetime.now(UTC))
        rows = await self._arriving_rows(http)
        if isinstance(rows, Response):
            return rows
        groups = _groups(rows, self.route.segment_column)
        refusal = self._unroutable(groups)
        if refusal is not None:
            return refusal
        answers = await self._answer_groups(rows, groups, request)
        refusal = next((a for a in answers if isinstance(a, Response)), None)
        if refusal is not None:
            return refusal
        predictions: list[dict[str, Any]] = [{}] * len(rows)
        for (segment, places), answered in zip(groups.items(), answers, strict=True):
            for place, prediction in zip(places, answered, strict=True):  # type: ignore[arg-type]
                predictions[place] = {**prediction, "segment": segment} if segment else prediction
        body = {"request_id": request.id, "model": self.route.model, "predictions": predictions}
        return Response(
            to_json(body), media_type="application/json", headers={"x-request-id": request.id}
        )

    async def _arriving_rows(self, http: Request) -> list[dict[str, Any]] | Response:
        """The parsed rows; while they are read, every slot's batcher knows one is coming."""
        slots = self.route.slots.values()
        for slot in slots:
            slot.arriving += 1  # each batcher waits a moment for requests that are this far
        try:
            return await self._parsed_rows(http)
        finally:
            for slot in slots:
                slot.arriving -= 1

    async def _parsed_rows(self, request: Request) -> list[dict[str, Any]] | Response:
        """The validated rows, or the 4xx that answers instead."""
        name, limit = self.route.model, self.max_body_bytes
        body = await _read_body(request, limit)
        if body is None:
            self.metrics.rejected.labels(name, "too_large").inc()
            return error(413, f"request body is over the limit of {limit} bytes")
        try:
            parsed = self.route.request_model.model_validate_json(body)
        except ValidationError as exc:
            self.metrics.rejected.labels(name, "invalid").inc()
            return _validation_error(exc)
        rows = parsed.rows
        if rows and not isinstance(rows[0], dict):  # a project's own pydantic RequestRow
            rows = [row.model_dump() for row in rows]
        return rows

    def _unroutable(self, groups: dict[str | None, list[int]]) -> Response | None:
        """The 422 for a segment the model does not have, the 503 for a slot not loaded yet."""
        name, slots, column = self.route.model, self.route.slots, self.route.segment_column
        unknown = [segment for segment in groups if segment not in slots]
        if unknown:
            self.metrics.rejected.labels(name, "unknown_segment").inc()
            first = groups[unknown[0]][0]
            return error(
                422,
                f"rows[{first}].{column}: {name} has no segment "
                f"{unknown[0]!r}; its segments are {', '.join(map(str, slots))}",
            )
        waiting = {s: slots[s] for s in groups if slots[s].route is None}
        if waiting:
            self.metrics.rejected.labels(name, "not_ready").inc()
            slot = next(iter(waiting.values()))
            return error(503, f"{slot.name} is not ready: {slot.problem or 'loading'}")
        return None

    async def _answer_groups(
        self, rows: list[dict[str, Any]], groups: dict[str | None, list[int]], request: _Request
    ) -> list[list[dict[str, Any]] | Response]:
        """Each group's answer, in the groups' order. Each slot's route is read once, now: a
        swap while the request waits on its batch does not change who answers it."""
        slots = self.route.slots
        if self.route.segment_column is None:  # the hot path: one group, no task to schedule
            share = _Share(slots[None], rows, None, request)
            return [await self._answer(share, slots[None].route)]  # type: ignore[arg-type]
        return await asyncio.gather(
            *(
                self._answer(
                    _Share(slots[segment], [rows[i] for i in places], places, request),
                    slots[segment].route,  # type: ignore[arg-type]
                )
                for segment, places in groups.items()
            )
        )

    async def _answer(self, share: _Share, served: Route) -> list[dict[str, Any]] | Response:
        """Predictions of the share's rows by `served`, captured; or the 4xx/503 instead.

        A canary that fails is answered for by the stable version. If that fails too, the
        rows are at fault (or the model is), not the canary: only then does the failure not
        count against it."""
        version, role = served.pick()
        canary_failure: dict[str, Any] | None = None
        try:
            answered = await version.predict(share.rows)
        except LoadPending as exc:
            return self._loading(share, exc)
        except Exception as exc:
            if role != "canary":
                return self._refused(share, version, exc) or self._unavailable(
                    share, share.failure(version, role, exc)
                )
            canary_failure = share.failure(version, role, exc)
            version, role = served.stable, "stable"
            try:
                answered = await version.predict(share.rows)
            except LoadPending as exc:
                return self._loading(share, exc)
            except Exception as again:
                return self._refused(share, version, again) or self._unavailable(
                    share, share.failure(version, role, again)
                )
        if canary_failure is not None:
            self.capture(share.slot, canary_failure)
            version_label = canary_failure["model_version"]
            self.metrics.requests.labels(share.slot.name, version_label, "canary", "error").inc()
        self._answered(share, version, role, answered)
        if served.shadow is not None:
            task = asyncio.create_task(_shadow(share, served.shadow, self.capture))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
        return _predictions(answered, version.version)

    def _answered(
        self, share: _Share, version: LoadedVersion, role: str, answered: PredictResult
    ) -> None:
        """Capture an answer and count it: requests, latency, rows."""
        slot, metrics = share.slot, self.metrics
        latency = time.perf_counter() - share.request.started
        ms = latency * 1000
        record = _record(
            share.request, version, role, share.rows, share.places, ms, answered=answered
        )
        self.capture(slot, record)
        metrics.requests.labels(slot.name, version.version, role, "ok").inc()
        metrics.latency.labels(slot.name, version.version).observe(latency)
        metrics.rows.labels(slot.name, version.version).inc(len(share.rows))

    def _loading(self, share: _Share, pending: LoadPending) -> Response:
        """The 503 for a version still loading after the request's wait: no model answered,
        so nothing is captured; the client is told when to try again."""
        self.metrics.rejected.labels(self.route.model, "loading").inc()
        response = error(503, str(pending), request_id=share.request.id)
        response.headers["Retry-After"] = str(pending.retry_after)
        return response

    def _unavailable(self, share: _Share, record: dict[str, Any]) -> Response:
        """The 503 for a failed prediction, captured and counted as an error."""
        slot = share.slot
        self.capture(slot, record)
        self.metrics.requests.labels(
            slot.name, record["model_version"], record["role"], "error"
        ).inc()
        message = f"{slot.name} v{record['model_version']} failed to predict ({record['error']})"
        return error(503, message, request_id=share.request.id)

    def _refused(self, share: _Share, version: LoadedVersion, exc: Exception) -> Response | None:
        """A 422 for nulls the model cannot take (the request's doing), else None."""
        missing = _missing_values(share.rows, exc)
        if missing is None:
            return None
        row, columns = missing
        self.metrics.rejected.labels(self.route.model, "missing_values").inc()
        where = f"rows[{share.places[row] if share.places else row}].{columns[0]}"
        return error(
            422,
            f"{where}: null, but {share.slot.name} v{version.version} cannot predict with "
            f"{', '.join(columns)} missing (its model has no imputer for them); send values",
            request_id=share.request.id,
        )


@dataclass(frozen=True)
class _Request:
    id: str
    received_at: datetime
    started: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "started", time.perf_counter())


@dataclass(frozen=True)
class _Share:
    """One slot's share of a request: every row, or one segment's rows and their places."""

    slot: ModelSlot
    rows: list[dict[str, Any]]
    places: list[int] | None  # where each row stood in the request; None: all, in order
    request: _Request

    def failure(self, version: LoadedVersion, role: str, exc: Exception) -> dict[str, Any]:
        """The record of a failed prediction, timed from the request's arrival."""
        ms = (time.perf_counter() - self.request.started) * 1000
        return _record(self.request, version, role, self.rows, self.places, ms, exc)


def _groups(rows: list[dict[str, Any]], column: str | None) -> dict[str | None, list[int]]:
    """Row places by segment, in order of first appearance; everything under None if the
    model has no segments."""
    if column is None:
        return {None: list(range(len(rows)))}
    groups: dict[str | None, list[int]] = {}
    for place, row in enumerate(rows):
        groups.setdefault(str(row[column]), []).append(place)
    return groups


async def _shadow(share: _Share, version: LoadedVersion, capture: Capture) -> None:
    """Score a copy of an answered request with the version in shadow; capture, never answer."""
    request, rows, places = share.request, share.rows, share.places
    started = time.perf_counter()
    try:
        answered = await version.predict(rows)
    except Exception as exc:
        ms = (time.perf_counter() - started) * 1000
        capture(share.slot, _record(request, version, "shadow", rows, places, ms, exc))
        return
    ms = (time.perf_counter() - started) * 1000
    capture(share.slot, _record(request, version, "shadow", rows, places, ms, answered=answered))


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
