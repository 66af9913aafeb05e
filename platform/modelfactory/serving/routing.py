"""Which loaded version answers a request, and how that changes without dropping one.

Each model has a `ModelSlot` holding an immutable `Route`: the stable version, and during a
rollout the canary version with its share of traffic (or shadow mode). A request reads the
slot's route once and keeps it to the end, so swapping the route is a single reference
assignment: in-flight requests finish on the versions they started with, new ones take the
new route. A `Refresher` thread polls the rollout table and the registry's `champion` alias,
loads any version it lacks *before* switching, and never touches the request path: predict
does no registry or disk I/O.

With a `Residency` (serve --memory-budget / --max-loaded), the refresher only records each
slot's target: a route holds `OnDemandVersion`s, loaded on their first request and evicted
least recently used (serving/residency.py). The stable and canary versions of an active
rollout are pinned and loaded by the refresher, as without a budget.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from modelfactory.ml.evaluation import predict_with_scores
from modelfactory.serving.batching import MicroBatcher, PredictResult
from modelfactory.serving.metrics import ResidencyMetrics
from modelfactory.serving.residency import Limits, Residency, pickled_bytes

# Deferred imports: numpy and pandas load with the first model: the endpoint imports this module
# at start, and /health answers before any model is loaded.

__all__ = [
    "LoadedVersion",
    "ModelSlot",
    "OnDemandVersion",
    "Refresher",
    "Route",
    "RouteTarget",
    "on_demand",
]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LoadedVersion:
    """One registered version, in memory, with its own batcher."""

    model: str
    version: str
    estimator: Any
    columns: list[str]
    batcher: MicroBatcher

    async def predict(self, rows: Sequence[dict[str, Any]]) -> PredictResult:
        return await self.batcher.predict(rows)


@dataclass(eq=False)
class OnDemandVersion:
    """A version a route names but the residency holds: loaded by the first request that
    needs it, evicted when not used for the longest (raises LoadPending while still cold)."""

    model: str
    version: str
    residency: Residency

    async def predict(self, rows: Sequence[dict[str, Any]]) -> PredictResult:
        async with self.residency.use(self.model, self.version) as loaded:
            return await loaded.predict(rows)


Servable = LoadedVersion | OnDemandVersion


def on_demand(
    limits: Limits, metrics: ResidencyMetrics | None = None
) -> Callable[[Callable[[str, str], LoadedVersion]], Residency]:
    """The Refresher's `residency`: loaded versions within `limits`, each sized by its
    estimator's pickle, its batcher stopped when evicted."""

    def residency(build: Callable[[str, str], LoadedVersion]) -> Residency:
        return Residency(
            build,
            limits=limits,
            size=lambda loaded: pickled_bytes(loaded.estimator),
            close=lambda loaded: loaded.batcher.close(),
            metrics=metrics,
        )

    return residency


@dataclass(frozen=True)
class RouteTarget:
    """What a model should serve: the refresher's wish, compared to detect a change."""

    stable: str
    canary: str | None = None
    percent: int = 0
    shadow: bool = False
    rollout_id: int | None = None

    def describe(self) -> str:
        if self.canary is None:
            return f"v{self.stable}"
        if self.shadow:
            return f"v{self.stable}, v{self.canary} in shadow"
        return f"v{self.stable} + v{self.canary} at {self.percent}%"


@dataclass(frozen=True)
class Route:
    target: RouteTarget
    stable: Servable
    canary: Servable | None = None

    def pick(self) -> tuple[Servable, str]:
        """The version that answers one request, and its role (stable or canary)."""
        target = self.target
        if self.canary is not None and not target.shadow and random.random() * 100 < target.percent:
            return self.canary, "canary"
        return self.stable, "stable"

    @property
    def shadow(self) -> Servable | None:
        return self.canary if self.target.shadow else None


@dataclass(eq=False)
class ModelSlot:
    """One model's place in the app: its request model, columns and current route."""

    name: str
    request_model: Any
    columns: list[str]
    route: Route | None = None
    problem: str | None = None  # why the slot cannot serve (yet), for /ready
    loaded: dict[str, LoadedVersion] = field(default_factory=dict)
    published: list[tuple[str, ...]] = field(default_factory=list)  # metric labels now set
    arriving: int = 0  # requests received, not yet handed to a batcher (event-loop only)
    # canary versions that failed to load, by (rollout id, version), and rollouts told so
    unloadable: dict[tuple[int | None, str | None], str] = field(default_factory=dict)
    reported: set[int] = field(default_factory=set)


class Refresher:
    """Keeps every slot's route in line with the rollout table and the champion alias.

    `resolve` answers every model's target at once (a few queries, whatever the number of
    models). With `generation`, a tick first reads that one cheap value and resolves only when
    it changed, or when `reconcile_seconds` passed since the last full resolve; without it,
    every tick resolves.

    With `residency`, versions are loaded on demand within its limits instead of all at once
    (see the module's docstring); `load` is then what the residency calls.
    """

    def __init__(
        self,
        slots: dict[str, ModelSlot],
        *,
        resolve: Callable[[], dict[str, RouteTarget | str]],
        load: Callable[[str, str], Any],
        executor: Executor | None,
        interval: float = 1.0,
        generation: Callable[[], Hashable] | None = None,
        reconcile_seconds: float = 60.0,
        on_swap: Callable[[ModelSlot, Route], None] | None = None,
        on_batch: Callable[[str, str, int], None] | None = None,
        on_canary_error: Callable[[int, str], None] | None = None,
        residency: Callable[[Callable[[str, str], LoadedVersion]], Residency] | None = None,
    ) -> None:
        self.slots = slots
        self._resolve = resolve
        self._load = load
        self._executor = executor
        self.interval = interval
        self._generation = generation
        self.reconcile_seconds = reconcile_seconds
        self._on_swap = on_swap
        self._on_batch = on_batch
        self._on_canary_error = on_canary_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: Hashable = None  # the generation the last full resolve started from
        self._targets: dict[str, RouteTarget | str] = {}  # what that resolve answered
        self._reconcile_at = 0.0  # monotonic time of the next full resolve
        self.resolves = 0  # full resolves so far: what the tests and the bench count
        # given the loader of one version, the residency that holds the loaded ones
        self.residency = residency(self._build) if residency is not None else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="route-refresher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.residency is not None:
            self.residency.shutdown()

    def tick(self) -> None:
        """One tick: a full resolve if the generation moved or the reconcile is due; else
        only retry, from the targets already known, the slots not yet on theirs (a version
        that failed to load), which asks nothing of the registry or the database."""
        if self._generation is None or time.monotonic() >= self._reconcile_at:
            self.refresh()
            return
        try:
            generation = self._generation()
        except Exception as exc:
            log.warning("could not read the serving generation: %s", exc)
            return
        if generation != self._seen:
            self.refresh(generation)
            return
        self._apply_targets(self._targets)

    def refresh(self, generation: Hashable | None = None) -> None:
        """One full pass: resolve what each model should serve, load what is missing, swap.

        The generation is read *before* resolving, so a move committed while resolving
        changes it again and the next tick resolves once more."""
        if generation is None and self._generation is not None:
            try:
                generation = self._generation()
            except Exception as exc:
                log.warning("could not read the serving generation: %s", exc)
        try:
            targets = self._resolve()
        except Exception as exc:
            log.warning("could not read the registry or rollout table: %s", exc)
            return
        self.resolves += 1
        self._seen, self._targets = generation, targets
        self._apply_targets(targets)
        # From the end of this pass: loading new versions may take a while.
        self._reconcile_at = time.monotonic() + self.reconcile_seconds

    def _apply_targets(self, targets: dict[str, RouteTarget | str]) -> None:
        for name, slot in self.slots.items():
            try:
                self._refresh_slot(slot, targets.get(name, "no champion yet"))
            except Exception:  # one model's trouble must not stop the others' routes
                log.exception("%s: route refresh failed; still serving %s", name, _current(slot))

    def _refresh_slot(self, slot: ModelSlot, target: RouteTarget | str) -> None:
        if isinstance(target, str):
            if slot.route is None:
                slot.problem = target
            return
        unloadable = slot.unloadable.get((target.rollout_id, target.canary))
        if unloadable is not None:
            self._report(slot, target.rollout_id, unloadable)  # until the rollout hears it
            target = RouteTarget(stable=target.stable, rollout_id=target.rollout_id)
        if slot.route is not None and slot.route.target == target:
            return
        self._apply(slot, target)

    def _report(self, slot: ModelSlot, rollout_id: int | None, error: str) -> None:
        if self._on_canary_error is None or rollout_id is None or rollout_id in slot.reported:
            return
        try:
            self._on_canary_error(rollout_id, error)
        except Exception as exc:
            log.warning(
                "%s: could not report to rollout %s (%s); retrying", slot.name, rollout_id, exc
            )
            return
        slot.reported.add(rollout_id)

    def _apply(self, slot: ModelSlot, target: RouteTarget) -> None:
        if self.residency is not None:  # a rollout's versions stay while it is judged
            self.residency.pin(slot.name, _pinned(target))
        try:
            stable = self._version(slot, target.stable)
        except Exception as exc:
            slot.problem = f"v{target.stable} failed to load: {type(exc).__name__}: {exc}"
            log.error("%s: %s; still serving %s", slot.name, slot.problem, _current(slot))
            return
        canary = None
        if target.canary is not None:
            try:
                canary = self._version(slot, target.canary)
            except Exception as exc:
                # The canary never answers; the stable version goes on serving everyone, and
                # the rollout is told, so the canary sensor rolls it back.
                error = f"v{target.canary} failed to load: {type(exc).__name__}: {exc}"
                log.error("%s: %s", slot.name, error)
                slot.unloadable[(target.rollout_id, target.canary)] = error
                self._report(slot, target.rollout_id, error)
                target = RouteTarget(stable=target.stable, rollout_id=target.rollout_id)
        route = Route(target=target, stable=stable, canary=canary)
        slot.route = route
        slot.problem = None
        keep = {target.stable, target.canary}
        for version in [v for v in slot.loaded if v not in keep]:
            slot.loaded.pop(version).batcher.close()
        if self.residency is not None:  # a canary that failed to load is not kept pinned
            self.residency.pin(slot.name, _pinned(target))
            self.residency.discard(slot.name, _pinned(target) | {target.stable})
        log.info("%s: now serving %s", slot.name, target.describe())
        if self._on_swap:
            self._on_swap(slot, route)

    def _version(self, slot: ModelSlot, version: str) -> Servable:
        if self.residency is not None:
            return self._on_demand(slot, version)
        if version not in slot.loaded:
            slot.loaded[version] = self._loaded(slot, version)
        return slot.loaded[version]

    def _on_demand(self, slot: ModelSlot, version: str) -> OnDemandVersion:
        """The version as the residency holds it; loaded now only if pinned (a rollout's)."""
        residency = self.residency
        assert residency is not None
        if residency.is_pinned(slot.name, version):
            residency.ensure(slot.name, version)  # a canary that cannot load fails here
        return OnDemandVersion(slot.name, version, residency)

    def _build(self, model: str, version: str) -> LoadedVersion:
        """What the residency calls (from a loader thread) to load one version."""
        return self._loaded(self.slots[model], version)

    def _loaded(self, slot: ModelSlot, version: str) -> LoadedVersion:
        """One version loaded from the registry, with its own batcher."""
        model = slot.name
        estimator = self._load(model, version)
        columns = _fit_order(estimator, slot.columns)
        on_batch = self._on_batch
        return LoadedVersion(
            model=model,
            version=version,
            estimator=estimator,
            columns=columns,
            batcher=MicroBatcher(
                _predictor(estimator, columns),
                self._executor,
                arriving=lambda: slot.arriving,
                on_batch=(lambda rows: on_batch(model, version, rows)) if on_batch else None,
            ),
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # the thread must outlive any one bad pass
                log.exception("route refresh failed")


def _fit_order(estimator: Any, columns: list[str]) -> list[str]:
    """The request's columns in the order the estimator was fitted on: scikit-learn refuses
    a frame whose columns are the same but ordered as the schema declares them."""
    fitted = [str(c) for c in getattr(estimator, "feature_names_in_", [])]
    return fitted if sorted(fitted) == sorted(columns) else columns


def _predictor(estimator: Any, columns: list[str]) -> Callable[..., PredictResult]:
    """rows -> predictions (the model's own labels), the positive-class scores of a binary
    classifier and every class's probability, as plain Python values."""
    import pandas as pd

    def predict(rows: Sequence[dict[str, Any]]) -> PredictResult:
        frame = missing_as_nan(pd.DataFrame.from_records(rows, columns=columns))
        predicted = predict_with_scores(estimator, frame)
        score = predicted.score
        probabilities = None
        if predicted.proba is not None:
            names = [str(label) for label in predicted.classes or []]
            probabilities = [dict(zip(names, row, strict=True)) for row in predicted.proba.tolist()]
        return PredictResult(
            predicted.labels.tolist(),
            score.tolist() if score is not None else None,
            probabilities,
        )

    return predict


def missing_as_nan(frame: Any) -> Any:
    """A request's nulls as NaN, the missing value the model saw in training (pandas reads a
    missing value as NaN; scikit-learn's imputers and encoders take None for a different
    thing, or refuse a column of None as non-numeric)."""
    import numpy as np

    for column in frame.select_dtypes(include="object").columns:
        values = frame[column]
        if values.isna().any():
            frame[column] = values.where(values.notna(), np.nan)
    return frame


def _pinned(target: RouteTarget) -> set[str]:
    """The versions never evicted while `target` holds: a rollout's stable and canary."""
    return {target.stable, target.canary} if target.canary is not None else set()


def _current(slot: ModelSlot) -> str:
    return slot.route.target.describe() if slot.route else "nothing"
