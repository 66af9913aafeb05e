"""Models loaded on demand within a budget (serving/residency.py, `serve --memory-budget`).

The residency's rules on plain values (LRU eviction by bytes and by count, one load per
version, a bounded wait then LoadPending, pinned and in-use versions kept, a failed load
failing only its own requests); the refresher recording targets without loading them; and
the acceptance of issue 19: 50 registered models behind one endpoint that holds 10, every
one answering correctly under threads of HTTP requests touching all of them.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from conftest import wait_for
from modelfactory.project.loader import load_project
from modelfactory.project.scaffold import ProjectAnswers, write_project
from modelfactory.serving.app import ServingSettings, create_app
from modelfactory.serving.metrics import ResidencyMetrics
from modelfactory.serving.residency import Limits, LoadPending, Residency, parse_size
from modelfactory.serving.routing import (
    ModelSlot,
    OnDemandVersion,
    Refresher,
    RouteTarget,
    on_demand,
)
from modelfactory.serving.server import BackgroundServer
from modelfactory.stores.home import local_home, model_registry, rollout_store


class Loads:
    """A loader of plain values (bytes of a given size), every call counted."""

    def __init__(self, size: int = 10, delay: float = 0.0, fail: set[str] | None = None) -> None:
        self.size, self.delay, self.fail = size, delay, fail or set()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.closed: list[bytes] = []

    def __call__(self, model: str, version: str) -> bytes:
        self.calls[(model, version)] += 1
        time.sleep(self.delay)
        if model in self.fail:
            raise OSError(f"{model}: artifact unreadable")
        return self.value(model, version)

    def value(self, model: str, version: str = "1") -> bytes:
        return f"{model}:{version}:".encode().ljust(self.size, b".")

    def residency(self, **limits: Any) -> Residency:
        return Residency(
            self, limits=Limits(**limits), size=len, close=self.closed.append,
            metrics=ResidencyMetrics(CollectorRegistry()),
        )  # fmt: skip


async def touch(residency: Residency, *models: str, version: str = "1") -> list[bytes]:
    out = []
    for model in models:
        async with residency.use(model, version) as value:
            out.append(value)
    return out


def test_sizes_read_as_people_write_them() -> None:
    assert parse_size("2GiB") == 2 * 1024**3
    assert parse_size("512MiB") == 512 * 1024**2
    assert parse_size("1.5GB") == 1_500_000_000
    assert parse_size("4096") == 4096
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_the_least_recently_used_is_evicted_beyond_the_count() -> None:
    loads = Loads()
    residency = loads.residency(max_loaded=2)
    values = asyncio.run(touch(residency, "a", "b", "a", "c"))
    assert values[0] == values[2] == loads.value("a")
    assert residency.resident == [("a", "1"), ("c", "1")]  # b was the least recently used
    assert loads.closed == [loads.value("b")] and residency.evictions == 1
    asyncio.run(touch(residency, "b"))
    assert loads.calls[("b", "1")] == 2  # evicted, so loaded again on its next request


def test_the_byte_budget_counts_each_version_size() -> None:
    loads = Loads(size=100)
    residency = loads.residency(budget_bytes=250)
    asyncio.run(touch(residency, "a", "b", "c", "d"))
    assert residency.resident == [("c", "1"), ("d", "1")]
    assert residency.resident_bytes == 200 and residency.evictions == 2


def test_concurrent_cold_requests_share_one_load() -> None:
    loads = Loads(delay=0.3)
    residency = loads.residency(max_loaded=5)

    async def many() -> list[list[bytes]]:
        return await asyncio.gather(*(touch(residency, "a") for _ in range(8)))

    assert {v for (v,) in asyncio.run(many())} == {loads.value("a")}
    assert loads.calls[("a", "1")] == 1


def test_a_cold_request_waits_a_bounded_time_then_hears_when_to_retry() -> None:
    loads = Loads(delay=0.6)
    residency = loads.residency(max_loaded=5, load_timeout=0.1, retry_after=3)
    with pytest.raises(LoadPending) as pending:
        asyncio.run(touch(residency, "slow"))
    assert pending.value.retry_after == 3
    time.sleep(0.8)  # the load went on without the request that gave up
    assert asyncio.run(touch(residency, "slow")) == [loads.value("slow")]
    assert loads.calls[("slow", "1")] == 1


def test_pinned_and_in_use_versions_are_never_evicted() -> None:
    loads = Loads()
    residency = loads.residency(max_loaded=2)
    residency.pin("canary", {"1", "2"})
    residency.ensure("canary", "1")
    residency.ensure("canary", "2")

    async def while_held() -> list[tuple[str, str]]:
        async with residency.use("held", "1"):
            await touch(residency, "x", "y")  # over the count: only x and y may go
            during = residency.resident
        return during

    during = asyncio.run(while_held())
    assert ("held", "1") in during and {("canary", "1"), ("canary", "2")} <= set(during)
    # released: back within the count as far as the pins allow
    assert set(residency.resident) == {("canary", "1"), ("canary", "2")}
    residency.pin("canary", set())  # the rollout ended: the pins go, and so does the excess
    assert len(residency.resident) == 2


def test_a_failed_load_fails_only_its_own_requests_and_is_retried() -> None:
    loads = Loads(fail={"broken"})
    residency = loads.residency(max_loaded=2)
    with pytest.raises(OSError, match="artifact unreadable"):
        asyncio.run(touch(residency, "broken"))
    assert asyncio.run(touch(residency, "fine")) == [loads.value("fine")]
    with pytest.raises(OSError):
        asyncio.run(touch(residency, "broken"))
    assert loads.calls[("broken", "1")] == 2


def tiny_estimator() -> Any:
    # deferred, as in fleet_projects: pandas and scikit-learn for the tests that fit a model
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    return LinearRegression().fit(X, X.x1 * 2 + X.x2)


def test_the_refresher_loads_only_a_rollouts_versions_with_a_budget() -> None:
    """Champions are routed but not loaded; a rollout's stable and canary are pinned and
    loaded at once (so a canary that cannot load is reported, as without a budget)."""
    estimator = tiny_estimator()
    calls: Counter[tuple[str, str]] = Counter()

    def load(model: str, version: str) -> Any:
        calls[(model, version)] += 1
        return estimator

    slots = {n: ModelSlot(name=n, request_model=None, columns=["x1", "x2"]) for n in "abc"}
    targets = {
        "a": RouteTarget(stable="1"),
        "b": RouteTarget(stable="1"),
        "c": RouteTarget(stable="1", canary="2", percent=10, rollout_id=7),
    }
    refresher = Refresher(
        slots, resolve=lambda: targets, load=load, executor=None,
        residency=on_demand(Limits(max_loaded=1)),
    )  # fmt: skip
    refresher.refresh()
    assert set(calls) == {("c", "1"), ("c", "2")}
    assert all(isinstance(s.route.stable, OnDemandVersion) for s in slots.values())  # type: ignore[union-attr]

    async def predict() -> Any:
        return await slots["a"].route.stable.predict([{"x1": 1.0, "x2": 1.0}])  # type: ignore[union-attr]

    assert asyncio.run(predict()).predictions == pytest.approx([3.0])
    residency = refresher.residency
    assert residency is not None
    assert set(residency.resident) == {("c", "1"), ("c", "2")}  # a came and went; c is pinned
    targets["c"] = RouteTarget(stable="2")  # the rollout finished: v2 is the champion
    refresher.refresh()
    assert residency.resident == [("c", "2")]
    refresher.stop()


# -- 50 models behind one endpoint that holds 10 ----------------------------------------

MODELS = 50
HOLDS = 10


def fleet_projects(root: Path, count: int = MODELS) -> list[Any]:
    """MODELS scaffolded regression projects (`modelfactory new`), one tiny fitted pipeline
    registered under each of their names, v1 the champion of every one."""
    # deferred: mlflow, pandas and scikit-learn are heavy; the residency's own tests need none
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    names = [f"fleet_{i:03d}" for i in range(count)]
    projects = [
        load_project(write_project(ProjectAnswers(name=n, task="regression"), root / n))
        for n in names
    ]
    X = pd.DataFrame(
        {
            "segment": list("abcdabcd"),
            "x1": [float(i) for i in range(8)],
            "x2": [float(i % 2) for i in range(8)],
            "x3": [float(i // 2 % 2) for i in range(8)],
        }
    )  # fmt: skip: 8 rows of full rank, so the fit is exactly 2 x1 + x2 + 3 x3
    numeric = ColumnTransformer([("numeric", "passthrough", ["x1", "x2", "x3"])])
    pipeline = make_pipeline(numeric, LinearRegression()).fit(X, X.x1 * 2 + X.x2 + 3 * X.x3)
    registry = model_registry()
    first = registry.log_candidate(
        model=names[0], estimator=pipeline, X_sample=X, params={}, metrics={}, tags={}
    )
    client = MlflowClient(tracking_uri=registry.tracking_uri)
    source = client.get_model_version(registry.registered_name(names[0]), "1").source
    for name in names:
        registered = registry.registered_name(name)
        if name != names[0]:
            client.create_registered_model(registered)
            client.create_model_version(registered, source, run_id=first.run_id)
        client.set_registered_model_alias(registered, "champion", "1")
    return projects


def metric(text: str, name: str) -> float:
    """The sum of a Prometheus family's samples (0 if absent)."""
    pattern = rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


@pytest.mark.slow
def test_fifty_models_behind_an_endpoint_that_holds_ten(tmp_path: Path) -> None:

    projects = fleet_projects(tmp_path / "model_projects")
    app = create_app(
        projects, registry=model_registry(), rollouts=rollout_store(), home=local_home().ensure(),
        settings=ServingSettings(max_loaded=HOLDS, load_timeout_seconds=60.0),
    )  # fmt: skip
    touches = [p.name for p in projects] * 3
    random.Random(19).shuffle(touches)
    failures: list[tuple[str, int, str]] = []
    peak = [0]
    residency = app.state.refresher.residency
    with BackgroundServer(app) as server:
        assert httpx.get(f"{server.url}/ready", timeout=30).status_code == 200
        assert residency.resident == []  # nothing loaded before its first request

        def send(names: list[str]) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                for i, name in enumerate(names):
                    row = {"segment": "a", "x1": float(i % 7), "x2": 1.0, "x3": 2.0}
                    answer = client.post(f"/models/{name}/predict", json={"rows": [row]})
                    peak[0] = max(peak[0], len(residency.resident))
                    body = answer.json()
                    expected = row["x1"] * 2 + 1.0 + 6.0
                    if (
                        answer.status_code != 200
                        or body["model"] != name
                        or abs(body["predictions"][0]["prediction"] - expected) > 1e-6
                    ):
                        failures.append((name, answer.status_code, answer.text[:200]))

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, [touches[i::4] for i in range(4)]))
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert failures == []
    assert metric(metrics, "modelfactory_model_evictions_total") > 0
    assert metric(metrics, "modelfactory_model_loads_total") >= MODELS
    assert 0 < metric(metrics, "modelfactory_loaded_versions") <= HOLDS
    assert metric(metrics, "modelfactory_resident_bytes") > 0
    assert peak[0] <= HOLDS  # eviction keeps the count even while 4 versions are in use


@pytest.mark.slow
def test_a_cold_request_past_its_wait_is_a_503_with_retry_after(tmp_path: Path) -> None:
    """The wait for a load is bounded: past it the client hears 503 and when to come back,
    the load goes on, and the retry is answered by the loaded version."""

    (project,) = fleet_projects(tmp_path / "model_projects", count=1)
    settings = ServingSettings(max_loaded=1, load_timeout_seconds=0.001)  # any load is slower
    app = create_app(
        [project], registry=model_registry(), rollouts=rollout_store(),
        home=local_home().ensure(), settings=settings,
    )  # fmt: skip
    row = {"segment": "a", "x1": 1.0, "x2": 0.0, "x3": 0.0}
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        path = f"/models/{project.name}/predict"
        cold = client.post(path, json={"rows": [row]})
        assert cold.status_code == 503, cold.text
        assert cold.headers["retry-after"] == "1"
        assert "is loading" in cold.json()["detail"]
        warm = wait_for(
            lambda: (r := client.post(path, json={"rows": [row]})).status_code == 200 and r,
            "the load to finish",
        )
        assert warm.json()["predictions"][0]["prediction"] == pytest.approx(2.0)  # type: ignore[union-attr]
        metrics = client.get("/metrics").text
    assert 'modelfactory_rejected_requests_total{model="fleet_000",reason="loading"}' in metrics
    assert metric(metrics, "modelfactory_model_loads_total") == 1
