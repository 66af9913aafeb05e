"""The endpoint: one FastAPI app serving every model project.

    POST /models/<name>/predict   {"rows": [...]} -> predictions, version of each, request id
    GET  /health                  the process is alive
    GET  /ready                   every model has a version loaded (503 and why, if not)
    GET  /models                  what each model serves now (versions, canary share)
    GET  /metrics                 Prometheus: requests, errors, latency, batch sizes
    GET  /docs                    OpenAPI, with each model's request schema

The request path is: size check, one pydantic-core pass over the JSON body, pick a version
from the model's current route, predict in a micro-batch, append the record to the capture
spool, answer. Registry, rollout table and warehouse are touched only by background threads.
A canary that fails is answered for by the stable version; the failure is captured, so the
canary sensor rolls it back, and the client never sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from pydantic_core import to_json

from modelfactory.serving.capture import CaptureFlusher, CaptureSpool
from modelfactory.serving.metrics import CONTENT_TYPE_LATEST, ServingMetrics
from modelfactory.serving.request_schema import (
    DEFAULT_MAX_ROWS,
    PredictResponse,
    build_request_model,
    input_columns,
)
from modelfactory.serving.routing import (
    LoadedVersion,
    ModelSlot,
    Refresher,
    Route,
    RouteTarget,
)

if TYPE_CHECKING:
    from modelfactory.project import ModelProject
    from modelfactory.registry import ModelRegistry
    from modelfactory.resources import LocalHome
    from modelfactory.serving.rollouts import RolloutStore

__all__ = ["ServingSettings", "create_app"]

log = logging.getLogger("modelfactory.serving")


@dataclass(frozen=True)
class ServingSettings:
    refresh_seconds: float = 1.0  # how often routes follow the registry and rollout table
    flush_seconds: float = 1.0  # how often captured requests move into the warehouse
    max_body_bytes: int = 4 * 1024 * 1024
    max_rows: int = DEFAULT_MAX_ROWS
    # 0: predict on the event loop. A scikit-learn predict holds the GIL for most of its
    # time, so a thread buys no parallelism, only GIL hand-offs (measured ~10% slower);
    # threads help a model whose predict releases the GIL or takes long enough to delay /health.
    predict_threads: int = 0


def create_app(
    projects: Sequence[ModelProject],
    *,
    registry: ModelRegistry,
    rollouts: RolloutStore,
    home: LocalHome,
    settings: ServingSettings | None = None,
) -> FastAPI:
    settings = settings or ServingSettings()
    metrics = ServingMetrics()
    executor = (
        ThreadPoolExecutor(settings.predict_threads, thread_name_prefix="predict")
        if settings.predict_threads
        else None
    )
    slots = {p.name: _slot(p, settings.max_rows) for p in projects}
    from modelfactory.resources import capture_archive, inference_store

    spools = {name: CaptureSpool(home.capture(name)) for name in slots}
    flushers = [
        CaptureFlusher(
            name,
            spools[name],
            inference_store(name, keep_open=True),
            settings.flush_seconds,
            archive=capture_archive(name),
        )
        for name in slots
    ]
    refresher = Refresher(
        slots,
        resolve=lambda: _resolve_targets(list(slots), registry, rollouts),
        load=registry.load,
        executor=executor,
        interval=settings.refresh_seconds,
        on_swap=lambda slot, route: _publish_route(metrics, slot, route),
        on_batch=lambda model, version, rows: metrics.batch_rows.labels(model, version).observe(
            rows
        ),
        on_canary_error=rollouts.report_serving_error,
    )
    background: set[asyncio.Task] = set()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(refresher.refresh)
        # The libraries loaded so far (mlflow, dagster, pandas, sklearn) hold millions of
        # objects; a full garbage collection walking them all stalls every request for
        # hundreds of milliseconds. Frozen, they are never walked again.
        gc.collect()
        gc.freeze()
        refresher.start()
        for flusher in flushers:
            flusher.start()
        yield
        refresher.stop()
        gc.unfreeze()
        if background:
            await asyncio.wait(background, timeout=10)
        for spool in spools.values():
            spool.close()  # the server answers no more requests: each segment is complete
        for flusher in flushers:
            await asyncio.to_thread(flusher.stop)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="Model Factory endpoint",
        description="Schema-checked predictions from each model's champion, with canary rollout.",
        lifespan=lifespan,
    )
    app.state.slots = slots
    app.state.refresher = refresher
    app.state.flushers = flushers
    app.state.metrics = metrics
    app.state.row_schemas = {}

    def capture(slot: ModelSlot, record: dict[str, Any]) -> None:
        spools[slot.name].append(to_json(record))

    for slot in slots.values():
        _add_predict_route(app, slot, settings, metrics, capture, background)
    _install_openapi(app)

    @app.post("/models/{name}/predict", include_in_schema=False)
    async def unknown_model(name: str) -> JSONResponse:
        metrics.rejected.labels("unknown", "unknown_model").inc()
        return _error(404, f"unknown model {name!r}; this endpoint serves {sorted(slots)}")

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/ready", tags=["operations"])
    async def ready() -> JSONResponse:
        models = _describe_slots(slots)
        waiting = {n: s.problem for n, s in slots.items() if s.route is None}
        status = 503 if waiting or not slots else 200
        return JSONResponse({"ready": status == 200, "models": models}, status_code=status)

    @app.get("/models", tags=["operations"])
    async def models() -> dict[str, Any]:
        return _describe_slots(slots)

    @app.get("/metrics", tags=["operations"])
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")

    return app


def _slot(project: ModelProject, max_rows: int) -> ModelSlot:
    request_model = build_request_model(project, max_rows)
    return ModelSlot(
        name=project.name, request_model=request_model, columns=input_columns(request_model)
    )


def _add_predict_route(
    app: FastAPI,
    slot: ModelSlot,
    settings: ServingSettings,
    metrics: ServingMetrics,
    capture: Any,
    background: set[asyncio.Task],
) -> None:
    name = slot.name
    validate = slot.request_model.model_validate_json

    async def checked(request: Request) -> tuple[list[dict], Route] | Response:
        """The validated rows and the route to take, or the 4xx/503 that answers instead."""
        body = await _read_body(request, settings.max_body_bytes)
        if body is None:
            metrics.rejected.labels(name, "too_large").inc()
            return _error(413, f"request body is over the limit of {settings.max_body_bytes} bytes")
        try:
            parsed = validate(body)
        except ValidationError as exc:
            metrics.rejected.labels(name, "invalid").inc()
            return _validation_error(exc)
        route = slot.route
        if route is None:
            metrics.rejected.labels(name, "not_ready").inc()
            return _error(503, f"{name} is not ready: {slot.problem or 'loading'}")
        rows = parsed.rows
        if rows and not isinstance(rows[0], dict):  # a project's own pydantic RequestRow
            rows = [row.model_dump() for row in rows]
        return rows, route

    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        slot.arriving += 1  # the batcher waits a moment for requests that are this far
        try:
            outcome = await checked(request)
        finally:
            slot.arriving -= 1
        if isinstance(outcome, Response):
            return outcome
        rows, route = outcome
        request_id = uuid.uuid4().hex
        version, role = route.pick()

        def failed(version: LoadedVersion, role: str, exc: Exception) -> dict[str, Any]:
            ms = (time.perf_counter() - started) * 1000
            return _record(request_id, received_at, version, role, rows, ms, exc)

        def unavailable(record: dict[str, Any]) -> Response:
            capture(slot, record)
            metrics.requests.labels(name, record["model_version"], record["role"], "error").inc()
            message = f"{name} v{record['model_version']} failed to predict ({record['error']})"
            return _error(503, message, request_id=request_id)

        canary_failure: dict[str, Any] | None = None
        try:
            predictions, scores = await version.predict(rows)
        except Exception as exc:
            if role != "canary":
                return unavailable(failed(version, role, exc))
            # The stable version answers instead. If it fails too, the rows are at fault (or
            # the model is), not the canary: only then does the failure not count against it.
            canary_failure = failed(version, role, exc)
            version, role = route.stable, "stable"
            try:
                predictions, scores = await version.predict(rows)
            except Exception as again:
                return unavailable(failed(version, role, again))
        if canary_failure is not None:
            capture(slot, canary_failure)
            metrics.requests.labels(name, canary_failure["model_version"], "canary", "error").inc()
        latency = time.perf_counter() - started
        record = _record(request_id, received_at, version, role, rows, latency * 1000)
        record["outputs"], record["scores"] = predictions, scores
        capture(slot, record)
        metrics.requests.labels(name, version.version, role, "ok").inc()
        metrics.latency.labels(name, version.version).observe(latency)
        metrics.rows.labels(name, version.version).inc(len(rows))
        if route.shadow is not None:
            task = asyncio.create_task(
                _shadow(slot, route.shadow, rows, request_id, received_at, capture)
            )
            background.add(task)
            task.add_done_callback(background.discard)
        answer = {
            "request_id": request_id,
            "model": name,
            "predictions": [
                {
                    "prediction": p,
                    "version": version.version,
                    "score": scores[i] if scores else None,
                }
                for i, p in enumerate(predictions)
            ],
        }
        return Response(
            to_json(answer), media_type="application/json", headers={"x-request-id": request_id}
        )

    schema = slot.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
    app.state.row_schemas.update(schema.pop("$defs", {}))
    app.add_api_route(
        f"/models/{name}/predict",
        predict,
        methods=["POST"],
        tags=["models"],
        summary=f"Predict with {name}",
        response_model=PredictResponse,
        responses={
            400: {"description": "The body is not JSON"},
            404: {"description": "Unknown model"},
            413: {"description": "The body is too large"},
            422: {"description": "A row breaks the model's request schema"},
            503: {"description": "The model has no version loaded, or its prediction failed"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }
        },
    )


def _install_openapi(app: FastAPI) -> None:
    """Add the row models that request bodies reference to the OpenAPI components."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(app.state.row_schemas)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _shadow(
    slot: ModelSlot,
    version: LoadedVersion,
    rows: list[dict[str, Any]],
    request_id: str,
    received_at: datetime,
    capture: Any,
) -> None:
    """Score a copy of an answered request with the version in shadow; capture, never answer."""
    started = time.perf_counter()
    try:
        predictions, scores = await version.predict(rows)
    except Exception as exc:
        ms = (time.perf_counter() - started) * 1000
        capture(slot, _record(request_id, received_at, version, "shadow", rows, ms, exc))
        return
    record = _record(
        request_id, received_at, version, "shadow", rows, (time.perf_counter() - started) * 1000
    )
    record["outputs"], record["scores"] = predictions, scores
    capture(slot, record)


def _record(
    request_id: str,
    received_at: datetime,
    version: LoadedVersion,
    role: str,
    rows: list[dict[str, Any]],
    latency_ms: float,
    error: Exception | None = None,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "received_at": received_at.replace(tzinfo=None).isoformat(),  # UTC
        "model_version": version.version,
        "role": role,
        "status": "error" if error else "ok",
        "error": f"{type(error).__name__}: {error}" if error else None,
        "latency_ms": round(latency_ms, 3),
        "inputs": rows,
    }


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
    for error in exc.errors(include_url=False):
        if error["type"] == "json_invalid":
            return _error(400, f"body is not valid JSON: {error['ctx'].get('error', error['msg'])}")
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        field = field.lstrip(".") or "body"
        problem = {"field": field, "message": error["msg"]}
        if error["type"] != "missing" and isinstance(error["input"], (str, int, float, bool)):
            problem["got"] = error["input"]
        problems.append(problem)
    first = problems[0]
    got = f", got {first['got']!r}" if "got" in first else ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return _error(422, f"{first['field']}: {first['message']}{got}{more}", errors=problems)


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _resolve_targets(
    names: list[str], registry: ModelRegistry, rollouts: RolloutStore
) -> dict[str, RouteTarget | str]:
    """What each model should serve: its active rollout, else its champion alias."""
    active = rollouts.all_active()
    targets: dict[str, RouteTarget | str] = {}
    for name in names:
        rollout = active.get(name)
        if rollout is not None:
            live = rollout.state in ("shadow", "canary")
            targets[name] = RouteTarget(
                stable=rollout.stable_version,
                canary=rollout.canary_version if live else None,
                percent=rollout.percent if live else 0,
                shadow=rollout.state == "shadow",
                rollout_id=rollout.id,
            )
            continue
        champion = registry.champion(name)
        targets[name] = (
            RouteTarget(stable=champion.version)
            if champion
            else f"no champion yet; train it with `modelfactory train {name}`"
        )
    return targets


def _publish_route(metrics: ServingMetrics, slot: ModelSlot, route: Route) -> None:
    for labels in slot.published:
        metrics.serving.remove(*labels)
    slot.published = [(slot.name, route.stable.version, "stable")]
    if route.canary is not None:
        role = "shadow" if route.target.shadow else "canary"
        slot.published.append((slot.name, route.canary.version, role))
    for labels in slot.published:
        metrics.serving.labels(*labels).set(1)
    metrics.canary_percent.labels(slot.name).set(route.target.percent if route.canary else 0)


def _describe_slots(slots: dict[str, ModelSlot]) -> dict[str, Any]:
    out = {}
    for name, slot in slots.items():
        if slot.route is None:
            out[name] = {"serving": None, "problem": slot.problem}
            continue
        target = slot.route.target
        out[name] = {
            "serving": target.describe(),
            "stable_version": target.stable,
            "canary_version": target.canary,
            "canary_percent": target.percent if target.canary else 0,
            "shadow": target.shadow,
            "rollout_id": target.rollout_id,
            "problem": slot.problem,
        }
    return out
