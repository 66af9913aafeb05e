"""The endpoint: one FastAPI app serving every model project.

    POST /models/<name>/predict   {"rows": [...]} -> predictions, version of each, request id
    GET  /health                  the process is alive
    GET  /ready                   every model has a version loaded (503 and why, if not)
    GET  /models                  what each model serves now (versions, canary share)
    GET  /metrics                 Prometheus: requests, errors, latency, batch sizes
    GET  /docs, /redoc            OpenAPI (Swagger UI, ReDoc), with each model's request schema;
                                  their scripts are served by the endpoint (docs.py): offline too

The request path is in predict_route.py. Registry, rollout table and warehouse are touched
only by background threads. Each model (or each segment of a segmented model) has a slot
whose route the refresher keeps in line with its champion and rollout.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic_core import to_json

from modelfactory.project.segments import cli_args, segment_model
from modelfactory.serving.capture import CaptureFlusher, CaptureFlushers, CaptureSpool
from modelfactory.serving.docs import add_docs
from modelfactory.serving.metrics import CONTENT_TYPE_LATEST, ResidencyMetrics, ServingMetrics
from modelfactory.serving.predict_route import PredictRoute, add_predict_route, error
from modelfactory.serving.request_schema import (
    DEFAULT_MAX_ROWS,
    build_request_model,
    input_columns,
)
from modelfactory.serving.residency import Limits, Residency
from modelfactory.serving.routing import (
    LoadedVersion,
    ModelSlot,
    Refresher,
    Route,
    RouteTarget,
    on_demand,
)
from modelfactory.stores.home import capture_archive, inference_store
from modelfactory.stores.instance import local_instance, segments_of

if TYPE_CHECKING:
    from modelfactory.project.loader import ModelProject
    from modelfactory.stores.home import LocalHome
    from modelfactory.stores.registry import ModelRegistry
    from modelfactory.stores.rollouts import RolloutStore

__all__ = ["ServingSettings", "create_app"]

log = logging.getLogger("modelfactory.serving")


@dataclass(frozen=True)
class ServingSettings:
    # How often routes check the serving generation (one query); when it moved, every
    # model's target is resolved again (active rollouts in one query, champions in one
    # registry search).
    refresh_seconds: float = 1.0
    # How often every target is resolved even if the generation did not move: the safety net
    # for aliases moved outside the platform (the MLflow UI, a script with MlflowClient).
    reconcile_seconds: float = 60.0
    flush_seconds: float = 1.0  # how often captured requests move into the warehouse
    max_body_bytes: int = 4 * 1024 * 1024
    max_rows: int = DEFAULT_MAX_ROWS
    # 0: predict on the event loop. A scikit-learn predict holds the GIL for most of its
    # time, so a thread buys no parallelism, only GIL hand-offs (measured ~10% slower);
    # threads help a model whose predict releases the GIL or takes long enough to delay /health.
    predict_threads: int = 0
    # Either set: versions load on their first request and the least recently used are
    # evicted beyond this many bytes (pickle length) or versions (serving/residency.py).
    # Neither: every slot's version is loaded at start and on every move, as always.
    memory_budget_bytes: int | None = None
    max_loaded: int | None = None
    load_timeout_seconds: float = 30.0  # a cold request's wait before 503 + Retry-After


def create_app(
    projects: Sequence[ModelProject],
    *,
    registry: ModelRegistry,
    rollouts: RolloutStore,
    home: LocalHome,
    settings: ServingSettings | None = None,
) -> FastAPI:
    """The endpoint for `projects`: their predict routes, the operations routes and docs.

    Nothing is loaded here: the lifespan loads each slot's version before the first request,
    then starts the refresher and the capture flushers (and stops them at shutdown).
    """
    settings = settings or ServingSettings()
    serving = _serving_parts(projects, registry, rollouts, home, settings)
    app = FastAPI(
        title="Model Factory endpoint",
        description="Schema-checked predictions from each model's champion, with canary rollout.",
        lifespan=serving.lifespan,
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: add_docs serves ours
        redoc_url=None,
    )
    add_docs(app)
    app.state.slots = serving.slots
    app.state.refresher = serving.refresher
    app.state.flushers = serving.flushers
    app.state.metrics = serving.metrics
    app.state.row_schemas = {}
    for route in serving.routes:
        add_predict_route(
            app,
            route,
            max_body_bytes=settings.max_body_bytes,
            metrics=serving.metrics,
            capture=serving.capture,
            background=serving.background,
        )
    _install_openapi(app)
    _add_operations_routes(app, serving)
    return app


@dataclass(frozen=True)
class _ServingParts:
    """What runs behind the routes: slots and the refresher keeping their routes in line,
    a capture spool and flusher per slot, and the predict threads if any."""

    routes: list[PredictRoute]
    slots: dict[str, ModelSlot]
    metrics: ServingMetrics
    refresher: Refresher
    spools: dict[str, CaptureSpool]
    flushers: CaptureFlushers
    executor: ThreadPoolExecutor | None
    background: set[asyncio.Task] = field(default_factory=set)  # shadow predictions running

    def capture(self, slot: ModelSlot, record: dict[str, Any]) -> None:
        """Append an answered request's record to its slot's spool."""
        self.spools[slot.name].append(to_json(record))

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Load every slot's version (with a budget: only a rollout's), then refresh and
        flush in the background until shutdown."""
        await asyncio.to_thread(self.refresher.refresh)
        # The libraries loaded so far (mlflow, dagster, pandas, sklearn) hold millions of
        # objects; a full garbage collection walking them all stalls every request for
        # hundreds of milliseconds. Frozen, they are never walked again.
        gc.collect()
        gc.freeze()
        self.refresher.start()
        self.flushers.start()
        yield
        self.refresher.stop()
        gc.unfreeze()
        if self.background:
            await asyncio.wait(self.background, timeout=10)
        for spool in self.spools.values():
            spool.close()  # the server answers no more requests: each segment is complete
        await asyncio.to_thread(self.flushers.stop)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)


def _serving_parts(
    projects: Sequence[ModelProject],
    registry: ModelRegistry,
    rollouts: RolloutStore,
    home: LocalHome,
    settings: ServingSettings,
) -> _ServingParts:
    """Slots for every model (or segment), wired to the registry, rollouts and warehouse."""
    metrics = ServingMetrics()
    executor = (
        ThreadPoolExecutor(settings.predict_threads, thread_name_prefix="predict")
        if settings.predict_threads
        else None
    )
    routes = [_predict_route(p, settings.max_rows) for p in projects]
    slots = {slot.name: slot for route in routes for slot in route.slots.values()}

    spools = {name: CaptureSpool(home.capture(name)) for name in slots}
    flushers = CaptureFlushers(
        [
            CaptureFlusher(
                name,
                spools[name],
                inference_store(name, keep_open=True),
                settings.flush_seconds,
                archive=capture_archive(name),
            )
            for name in slots
        ],
        settings.flush_seconds,
    )
    refresher = Refresher(
        slots,
        resolve=lambda: _resolve_targets(list(slots), registry, rollouts),
        load=registry.load,
        executor=executor,
        interval=settings.refresh_seconds,
        generation=rollouts.generation,
        reconcile_seconds=settings.reconcile_seconds,
        on_swap=lambda slot, route: _publish_route(metrics, slot, route),
        on_batch=lambda model, version, rows: metrics.batch_rows.labels(model, version).observe(
            rows
        ),
        on_canary_error=rollouts.report_serving_error,
        residency=_residency(settings, metrics),
    )
    return _ServingParts(routes, slots, metrics, refresher, spools, flushers, executor)


def _residency(
    settings: ServingSettings, metrics: ServingMetrics
) -> Callable[[Callable[[str, str], LoadedVersion]], Residency] | None:
    """How the refresher builds its residency, if the settings ask for a budget."""
    if settings.memory_budget_bytes is None and settings.max_loaded is None:
        return None
    limits = Limits(
        budget_bytes=settings.memory_budget_bytes,
        max_loaded=settings.max_loaded,
        load_timeout=settings.load_timeout_seconds,
    )
    return on_demand(limits, ResidencyMetrics(metrics.registry))


def _add_operations_routes(app: FastAPI, serving: _ServingParts) -> None:
    """/health, /ready, /models, /metrics; a 404 naming the served models; a 500 that says
    where to look instead of a traceback."""
    metrics, slots = serving.metrics, serving.slots
    served = sorted(route.model for route in serving.routes)

    @app.post("/models/{name}/predict", include_in_schema=False)
    async def unknown_model(name: str) -> JSONResponse:
        metrics.rejected.labels("unknown", "unknown_model").inc()
        return error(404, f"unknown model {name!r}; this endpoint serves {served}")

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
        return error(500, f"internal error ({type(exc).__name__}); see the server log")


def _predict_route(project: ModelProject, max_rows: int) -> PredictRoute:
    """A model's slot, or a slot per segment (`<model>.<segment>`) sharing its request model.

    Segments are those the spec lists, or those discovered so far: a segment discovered after
    the server started is served after a restart.
    """

    request_model = build_request_model(project, max_rows)
    columns = input_columns(request_model)
    spec = project.spec
    if spec.segments is None:
        slot = ModelSlot(name=project.name, request_model=request_model, columns=columns)
        return PredictRoute(project.name, request_model, {None: slot})
    instance = None
    if spec.segments.discovered:
        instance = local_instance()
    slots: dict[str | None, ModelSlot] = {
        segment: ModelSlot(
            name=segment_model(project.name, segment), request_model=request_model, columns=columns
        )
        for segment in segments_of(spec, instance)
    }
    return PredictRoute(project.name, request_model, slots, segment_column=spec.segments.by)


def _install_openapi(app: FastAPI) -> None:
    """Add the row models that request bodies reference to the OpenAPI components."""

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


def _resolve_targets(
    names: list[str], registry: ModelRegistry, rollouts: RolloutStore
) -> dict[str, RouteTarget | str]:
    """What each model should serve: its active rollout, else its champion alias. Two reads
    for any number of models: the active rollouts in one query, the champions of the others
    in one registry search."""
    active = rollouts.all_active()
    others = [name for name in names if name not in active]
    champions = registry.champions(others) if others else {}
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
        champion = champions.get(name)
        targets[name] = (
            RouteTarget(stable=champion)
            if champion
            else f"no champion yet; train it with `modelfactory train {cli_args(name)}`"
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
