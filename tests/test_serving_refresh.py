"""The endpoint's route refresh on real parts, at fleet size: 100 registered models in one MLflow
registry (sqlite), the platform's rollout table and audit trail, the endpoint's own Refresher
and target resolution.

The promises: an idle tick costs one database query whatever the number of models; a move
the platform makes (promotion, rollout start) reaches the route within 2 s; a move made with
MlflowClient behind the platform's back is caught by the full reconcile.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from conftest import wait_for
from modelfactory.lifecycle.promotion import Stores, promote
from modelfactory.project.spec import CanarySpec
from modelfactory.serving.app import _resolve_targets
from modelfactory.serving.capture import CaptureFlusher, CaptureFlushers, CaptureSpool
from modelfactory.serving.routing import ModelSlot, Refresher
from modelfactory.stores.home import (
    audit_log,
    local_home,
    model_registry,
    notifier,
    platform_db_url,
    rollout_store,
)
from modelfactory.stores.inference_reader import read_inference_log
from modelfactory.stores.sql_engines import engine_for

pytestmark = pytest.mark.slow
N = 100
COLUMNS = ["x1", "x2"]
RECORD = json.dumps(
    {
        "request_id": "r1", "received_at": "2026-01-01T00:00:00", "model_version": "1",
        "role": "stable", "status": "ok", "error": None, "latency_ms": 1.0,
        "inputs": [{"x1": 1.0, "x2": 0.0}], "outputs": [1.0], "scores": None,
    }
).encode()  # fmt: skip


class Counted:
    """A real store, every method call counted by name: measuring, not mocking."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


class Statements:
    """Every SQL statement the platform database's engine sends, counted."""

    def __init__(self) -> None:
        self.count = 0
        self.engine = engine_for(platform_db_url())

    def _seen(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)


def names(n: int) -> list[str]:
    return [f"fleet_{i:03d}" for i in range(n)]


@pytest.fixture
def fleet() -> list[str]:
    """N registered models with versions 1 and 2 of one tiny scikit-learn model, and v1 the
    champion of all but the last (promoted through the platform, as training does)."""
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    registry = model_registry()
    X = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    first = registry.log_candidate(
        model=names(1)[0],
        estimator=LinearRegression().fit(X, X.x1 * 2 + X.x2),
        X_sample=X,
        params={},
        metrics={},
        tags={},
    )
    client = MlflowClient(tracking_uri=registry.tracking_uri)
    source = client.get_model_version(registry.registered_name(first.model), "1").source
    for i, name in enumerate(names(N)):
        if i:
            client.create_registered_model(name)
            client.create_model_version(name, source, run_id=first.run_id)
        client.create_model_version(name, source, run_id=first.run_id)  # v2
    stores = platform_stores()
    for name in names(N - 1):
        promote_to(stores, name, "1", current=None)
    return names(N)


def platform_stores() -> Stores:
    return Stores(
        registry=model_registry(), rollouts=rollout_store(), audit=audit_log(), notifier=notifier()
    )


def promote_to(stores: Stores, name: str, version: str, current: str | None) -> None:
    promote(
        stores, unit=name, version=version, current=current, canary=CanarySpec(),
        actor="test", reason="test", run_id="test-run",
    )  # fmt: skip


def refresher(models: list[str], registry: Any, rollouts: Any, **options: Any) -> Refresher:
    """The endpoint's refresher over bare slots (no request schema needed to route)."""
    slots = {name: ModelSlot(name=name, request_model=None, columns=COLUMNS) for name in models}
    return Refresher(
        slots,
        resolve=lambda: _resolve_targets(models, registry, rollouts),
        load=registry.load,
        executor=None,
        generation=rollouts.generation,
        **options,
    )


def serving(refresh: Refresher, name: str) -> str | None:
    route = refresh.slots[name].route
    return route.target.describe() if route else None


@pytest.fixture
def running(fleet: list[str]) -> Iterator[Refresher]:
    refresh = refresher(fleet, model_registry(), rollout_store(), reconcile_seconds=4.0)
    refresh.refresh()  # as the endpoint's start-up does: every route loaded
    refresh.start()
    yield refresh
    refresh.stop()


def test_an_idle_tick_is_one_query_for_1_or_100_models(fleet: list[str]) -> None:
    for models in (fleet[:1], fleet):
        registry, rollouts = Counted(model_registry()), Counted(rollout_store())
        refresh = refresher(models, registry, rollouts, reconcile_seconds=3600)
        refresh.refresh()
        assert all(slot.route for slot in list(refresh.slots.values())[: N - 1])
        registry.calls.clear()
        rollouts.calls.clear()
        with Statements() as sql:
            for _ in range(20):
                refresh.tick()
        assert registry.calls == Counter(), f"{len(models)} models"
        assert rollouts.calls == Counter(generation=20), f"{len(models)} models"
        assert sql.count == 20, f"{len(models)} models: {sql.count} statements in 20 ticks"
        assert refresh.resolves == 1


def test_a_full_resolve_is_two_reads_for_100_models(fleet: list[str]) -> None:
    registry, rollouts = Counted(model_registry()), Counted(rollout_store())
    refresh = refresher(fleet, registry, rollouts, reconcile_seconds=3600)
    refresh.refresh()
    promote_to(platform_stores(), fleet[-1], "1", current=None)  # the generation moves
    registry.calls.clear()
    rollouts.calls.clear()
    refresh.tick()
    assert refresh.resolves == 2
    # generation + active rollouts; one registry search, and the new champion's load
    assert rollouts.calls == Counter(generation=1, all_active=1)
    assert registry.calls == Counter(champions=1, load=1)
    assert serving(refresh, fleet[-1]) == "v1"


def test_moves_through_the_platform_reach_the_route_within_2_s(running: Refresher) -> None:
    fleet, stores = list(running.slots), platform_stores()
    assert running.slots[fleet[-1]].route is None  # no champion yet
    started = time.monotonic()
    promote_to(stores, fleet[-1], "1", current=None)
    wait_for(lambda: serving(running, fleet[-1]) == "v1", "the first champion", timeout=2)

    promote_to(stores, fleet[7], "2", current="1")  # reserves a rollout: v1 serves on
    reserved = stores.rollouts.active(fleet[7])
    time.sleep(1.5)
    assert serving(running, fleet[7]) == "v1"
    stores.rollouts.start(reserved)
    wait_for(lambda: serving(running, fleet[7]) == "v1 + v2 at 5%", "the canary", timeout=2)
    assert time.monotonic() - started < 4.0 + 1.5  # neither waited for the reconcile
    assert serving(running, fleet[8]) == "v1"


def test_a_move_outside_the_platform_is_caught_by_the_reconcile(running: Refresher) -> None:
    name = list(running.slots)[5]
    resolves = running.resolves
    MlflowClient(tracking_uri=model_registry().tracking_uri).set_registered_model_alias(
        name, "champion", "2"
    )
    time.sleep(1.5)
    assert serving(running, name) == "v1"  # the generation did not move: no resolve yet
    wait_for(lambda: serving(running, name) == "v2", "the reconcile", timeout=4.0 + 2)
    assert running.resolves > resolves


def test_an_idle_flusher_leaves_the_warehouse_shut() -> None:
    """At rest every model's capture flusher ticks each second: with nothing appended since
    its last flush it opens no warehouse connection; a new record is flushed as before."""
    home = local_home()
    spool = CaptureSpool(home.capture("m"))
    flusher = CaptureFlusher("m", spool, home.warehouse("m"))
    flusher.store = store = Counted(flusher.store)
    spool.append(RECORD)
    assert flusher.flush() == 1
    opened = store.calls["connect"]
    assert [flusher.flush() for _ in range(20)] == [0] * 20
    assert store.calls["connect"] == opened
    spool.append(RECORD)
    assert flusher.flush() == 1
    assert len(read_inference_log(home.warehouse("m"), "m")) == 2


def test_a_fleet_of_flushers_ticks_on_one_thread_and_loses_nothing() -> None:
    """100 models' flushers: one timer thread (not one per model) and a small pool; the few
    models that took requests are flushed within a couple of ticks, the idle ones open no
    warehouse, and stop() flushes what came after the last tick."""
    home = local_home()
    before = {t.name for t in threading.enumerate()}
    spools = [CaptureSpool(home.capture(f"m{i}")) for i in range(N)]
    flushers = [
        CaptureFlusher(f"m{i}", spool, home.warehouse(f"m{i}")) for i, spool in enumerate(spools)
    ]
    for flusher in flushers:
        flusher.store = Counted(flusher.store)
    group = CaptureFlushers(flushers, interval=0.2)
    group.start()
    try:
        added = {t.name for t in threading.enumerate()} - before
        assert added == {"capture-ticker"}  # the pool starts threads only for work
        busy = [3, 50, 99]
        for i in busy:
            spools[i].append(RECORD)
        wait_for(lambda: all(flushers[i].rows_flushed == 1 for i in busy), "the busy models' flush")
        assert sum(f.store.calls["connect"] for f in flushers) == len(busy)
        assert len([t for t in threading.enumerate() if t.name.startswith("capture")]) <= 1 + 3
        spools[50].append(RECORD)
    finally:
        for spool in spools:
            spool.close()
        group.stop()
    assert [len(read_inference_log(home.warehouse(f"m{i}"), f"m{i}")) for i in busy] == [1, 2, 1]
