"""The endpoint on real parts: uvicorn on 127.0.0.1, the MLflow registry, DuckDB capture, sensors.

The promises of serving: a promotion under steady traffic fails no request; a broken canary
is rolled back by the sensor while nobody gets a 5xx; bad requests get the right 4xx; a
killed server loses no answered request.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context

from conftest import LiveServer, edit_spec, free_port, train_with, wait_for
from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.resources import project_resources
from modelfactory.orchestration.sensors import CANARY_SENSOR
from modelfactory.project.loader import load_project
from modelfactory.serving import create_app
from modelfactory.serving.app import ServingSettings
from modelfactory.stores.home import local_home, model_registry, rollout_store
from modelfactory.stores.inference_reader import read_inference_log, version_stats
from modelfactory.stores.notify import read_alerts

pytestmark = pytest.mark.slow
MODEL = "demand_forecast"
ROW = {"marketplace": "uk", "price": 9.5, "promo": 1, "temperature": 20.0, "is_weekend": 0}

# A version that passes the gate on the holdout but breaks on the small batches of live traffic.
BROKEN_TRAIN = """
from sklearn.preprocessing import FunctionTransformer

from .train_ok import Params, train as train_ok


def refuse_small_batches(X):
    if len(X) < 5:
        raise RuntimeError("deliberately broken: refuses batches under 5 rows")
    return X


def train(X, y, params: Params):
    model = train_ok(X, y, params)
    model.steps.insert(0, ("guard", FunctionTransformer(refuse_small_batches)))
    return model.fit(X, y)
"""


# A version that passes the gate on the holdout but, on the small batches of live traffic,
# reads price in cents: train/serve skew only live labels can show.
SKEWED_TRAIN = """
from sklearn.preprocessing import FunctionTransformer

from .train_ok import Params, train as train_ok


def price_in_cents_when_live(X):
    if len(X) < 5:
        X = X.assign(price=X["price"] * 100)
    return X


def train(X, y, params: Params):
    model = train_ok(X, y, params)
    model.steps.insert(0, ("skew", FunctionTransformer(price_in_cents_when_live)))
    return model.fit(X, y)
"""


def demand_project(copy_example, **canary) -> Path:
    return copy_example(
        MODEL, edit=lambda spec: spec["serving"].update(canary=canary), segments=False
    )


def serve(*roots: Path, **settings) -> LiveServer:
    settings = {"refresh_seconds": 0.1, "flush_seconds": 0.2, **settings}
    app = create_app(
        [load_project(root) for root in roots],
        registry=model_registry(),
        rollouts=rollout_store(),
        home=local_home(),
        settings=ServingSettings(**settings),
    )
    return LiveServer(app)


def predict(client: httpx.Client, rows: list[dict] | None = None) -> httpx.Response:
    return client.post(f"/models/{MODEL}/predict", json={"rows": rows or [ROW]})


def serving(client: httpx.Client) -> dict:
    return client.get("/models").json()[MODEL]


def captured(role: str, version: str) -> int:
    stats = version_stats(
        local_home().warehouse(MODEL), MODEL, since=datetime.now(UTC) - timedelta(hours=1)
    )
    return sum(s.requests for s in stats if (s.role, s.version) == (role, version))


def tick_canary(root: Path):
    """One evaluation of the real sensor, as the daemon would run it."""
    sensor = build_definitions(load_project(root)).resolve_sensor_def(CANARY_SENSOR)
    context = build_sensor_context(
        instance=DagsterInstance.get(), resources=project_resources(MODEL)
    )
    return sensor(context)


def card_refresh(tick):
    """A rollback's tick requests the model card's refresh, saying why in its tags."""
    (card,) = tick.run_requests
    assert card.asset_selection == [AssetKey([MODEL, "model_card"])]
    assert card.tags["modelfactory/trigger"] == "canary_rollback"
    return card


class Traffic:
    """Steady traffic from a few client threads, every outcome recorded."""

    def __init__(self, url: str, clients: int = 3) -> None:
        self.url = url
        self.clients = clients
        self.results: list[tuple[int, str | None]] = []
        self._stop = threading.Event()

    def __enter__(self) -> Traffic:
        self.threads = [
            threading.Thread(target=self._send, daemon=True) for _ in range(self.clients)
        ]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _send(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = predict(client)
                except httpx.HTTPError as exc:
                    self.results.append((-1, repr(exc)))
                    continue
                version = (
                    response.json()["predictions"][0]["version"]
                    if response.is_success
                    else response.text
                )
                self.results.append((response.status_code, version))


def test_a_promotion_under_steady_traffic_fails_no_request(copy_example) -> None:
    root = demand_project(copy_example, steps=[100])
    train_with(root, alpha=100.0)  # v1

    with serve(root) as server, Traffic(server.url) as traffic:
        wait_for(lambda: len(traffic.results) >= 30, "traffic on v1")
        assert train_with(root, alpha=1.0).promoted  # v2: the endpoint asset rolls it out at once
        first_v2 = wait_for(
            lambda: next((i for i, (_, v) in enumerate(traffic.results) if v == "2"), None), "v2"
        )
        wait_for(lambda: len(traffic.results) >= first_v2 + 60, "traffic on v2")

    statuses = [status for status, _ in traffic.results]
    assert statuses.count(200) == len(statuses), [r for r in traffic.results if r[0] != 200][:5]
    versions = [version for _, version in traffic.results]
    assert versions[0] == "1" and versions[-30:] == ["2"] * 30
    rollout = rollout_store().latest(MODEL)
    assert (rollout.stable_version, rollout.canary_version, rollout.state) == (
        "1",
        "2",
        "completed",
    )

    # every answered request reached the warehouse (the server flushed on shutdown)
    log = read_inference_log(local_home().warehouse(MODEL), MODEL)
    assert len(log) == log["request_id"].nunique() == len(traffic.results)  # once each
    assert set(log["model_version"]) == {"1", "2"}


def test_a_broken_canary_is_rolled_back_and_nobody_sees_it_fail(copy_example) -> None:
    root = demand_project(copy_example, steps=[50, 100], min_requests=20, max_error_rate=0.01)
    train_with(root, alpha=100.0)  # v1
    (root / "train.py").rename(root / "train_ok.py")
    (root / "train.py").write_text(BROKEN_TRAIN)
    assert train_with(root, alpha=1.0).promoted  # v2 passes the gate on the holdout
    assert rollout_store().active(MODEL).percent == 50

    with serve(root) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: serving(client)["canary_version"] == "2", "the canary to load")
        during = [predict(client) for _ in range(40)]
        wait_for(lambda: captured("canary", "2") >= 5, "the canary's failures in the log")

        tick = tick_canary(root)  # the sensor judges and acts
        card = card_refresh(tick)
        said = card.tags["modelfactory/reason"]
        assert "rolled back" in said and "failed" in said

        assert model_registry().champion(MODEL).version == "1"
        assert rollout_store().latest(MODEL).state == "rolled_back"
        wait_for(lambda: serving(client)["canary_version"] is None, "the route back to v1")
        after = [predict(client) for _ in range(10)]
        metrics = client.get("/metrics").text

    assert [r.status_code for r in during + after] == [200] * 50  # canary failures fell back
    assert {r.json()["predictions"][0]["version"] for r in during + after} == {"1"}
    canary_errors = re.search(
        r'modelfactory_requests_total\{model="demand_forecast",outcome="error",role="canary",version="2"\} (\S+)',
        metrics,
    )
    assert canary_errors and float(canary_errors.group(1)) >= 5
    (alert,) = [a for a in read_alerts(local_home().alerts_log) if a.event == "canary_rollback"]
    assert "rolled back v2 -> v1" in alert.text and "failed" in alert.text
    move = model_registry().history(MODEL)[-1]
    assert (move.event, move.actor, move.to_version) == ("rollback", "canary-sensor", "1")
    instance = DagsterInstance.get()
    (endpoint,) = instance.fetch_observations(AssetKey([MODEL, "endpoint"]), limit=1).records
    assert endpoint.asset_observation.metadata["rollout_state"].value == "rolled_back"
    (champion,) = instance.fetch_observations(AssetKey([MODEL, "champion"]), limit=1).records
    assert champion.asset_observation.metadata["champion_version"].value == "1"

    # The card refresh the sensor requested, run as the daemon would: it tells of v1's return.
    job = build_definitions(load_project(root)).resolve_implicit_global_asset_job_def()
    refreshed = job.execute_in_process(
        instance=instance, asset_selection=card.asset_selection, tags=card.tags
    )
    text = refreshed.output_for_node(f"{MODEL}__model_card")
    assert "- **Champion:** v1\n  - put back by a rollback " in text and "canary-sensor" in text


def test_a_healthy_canary_goes_from_shadow_through_its_steps(copy_example) -> None:
    root = demand_project(
        copy_example, steps=[50, 100], min_requests=10, shadow=True, max_latency_ratio=50
    )
    train_with(root, alpha=100.0)  # v1
    assert train_with(root, alpha=1.0).promoted  # v2, in shadow first
    assert rollout_store().active(MODEL).state == "shadow"

    with serve(root) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: serving(client)["shadow"], "the shadow to load")
        shadowed = [predict(client) for _ in range(15)]
        wait_for(lambda: captured("shadow", "2") >= 10, "shadow scores in the log")
        tick_canary(root)
        assert rollout_store().active(MODEL).percent == 50

        wait_for(lambda: serving(client)["canary_percent"] == 50, "the 50% step")
        split = [predict(client) for _ in range(60)]
        wait_for(lambda: captured("canary", "2") >= 10, "canary answers in the log")
        tick_canary(root)
        assert rollout_store().latest(MODEL).state == "completed"
        wait_for(lambda: serving(client)["serving"] == "v2", "v2 alone")
        final = predict(client)

    assert {r.json()["predictions"][0]["version"] for r in shadowed} == {"1"}
    assert {r.json()["predictions"][0]["version"] for r in split} == {"1", "2"}
    assert final.json()["predictions"][0]["version"] == "2"
    assert any(a.event == "rollout_completed" for a in read_alerts(local_home().alerts_log))


def test_bad_requests_get_the_right_4xx(copy_example) -> None:
    root = demand_project(copy_example)
    # temperature may be null, but the Ridge pipeline has no imputer (`modelfactory check`
    # refuses this; a model served before that check existed may still be like it)
    schemas = root / "schemas.py"
    schemas.write_text(
        schemas.read_text().replace(
            "temperature: Series[float] = pa.Field(ge=-40, le=50)\n    is_weekend",
            "temperature: Series[float] = pa.Field(ge=-40, le=50, nullable=True)\n    is_weekend",
        )
    )
    train_with(root, alpha=1.0)
    ok = {"rows": [ROW]}

    with (
        serve(root, max_body_bytes=4096, max_rows=20) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        cases = [
            (
                {"rows": [{**ROW, "price": -1}]},
                422,
                "rows[0].price: Input should be greater than 0, got -1",
            ),
            (
                {"rows": [ROW, {**ROW, "price": "cheap"}]},
                422,
                "rows[1].price: Input should be a valid number",
            ),
            (
                {"rows": [{k: v for k, v in ROW.items() if k != "promo"}]},
                422,
                "rows[0].promo: Field required",
            ),
            (
                {"rows": [{**ROW, "marketplace": "fr"}]},
                422,
                "rows[0].marketplace: Input should be 'uk', 'de' or 'us', got 'fr'",
            ),
            (
                {"rows": [{**ROW, "colour": "red"}]},
                422,
                "rows[0].colour: Extra inputs are not permitted",
            ),
            ({"rows": []}, 422, "rows: List should have at least 1 item"),
            ({"rows": [ROW] * 21}, 422, "rows: List should have at most 20 items"),
            ({"data": [ROW]}, 422, "rows: Field required"),
            (
                {"rows": [ROW, {**ROW, "temperature": None}]},
                422,
                "rows[1].temperature: null, but demand_forecast v1 cannot predict with "
                "temperature missing",
            ),
        ]
        for body, status, detail in cases:
            response = client.post(f"/models/{MODEL}/predict", json=body)
            assert (response.status_code, response.json()["detail"][: len(detail)]) == (
                status,
                detail,
            )

        too_big = client.post(f"/models/{MODEL}/predict", json={"rows": [ROW] * 60})
        chunked = client.post(
            f"/models/{MODEL}/predict", content=iter([b'{"rows": [', b" " * 5000, b"]}"])
        )
        not_json = client.post(f"/models/{MODEL}/predict", content=b'{"rows": [')
        unknown = client.post("/models/churn/predict", json=ok)
        assert (too_big.status_code, chunked.status_code) == (413, 413)
        assert "over the limit of 4096 bytes" in too_big.json()["detail"]
        assert (not_json.status_code, not_json.json()["detail"][:20]) == (
            400,
            "body is not valid JS",
        )
        assert unknown.status_code == 404 and "unknown model 'churn'" in unknown.json()["detail"]

        answer = client.post(f"/models/{MODEL}/predict", json={"rows": [ROW, {**ROW, "promo": 0}]})
        assert answer.status_code == 200
        body = answer.json()
        assert [p["version"] for p in body["predictions"]] == ["1", "1"]
        assert (
            body["predictions"][0]["prediction"] > body["predictions"][1]["prediction"]
        )  # promo lifts sales
        assert answer.headers["x-request-id"] == body["request_id"]

        assert client.get("/health").json() == {"status": "alive"}
        assert client.get("/ready").status_code == 200
        openapi = client.get("/openapi.json").json()
        row = openapi["components"]["schemas"]["DemandForecastRow"]
        assert row["properties"]["marketplace"]["enum"] == ["uk", "de", "us"]
        assert client.get("/docs").status_code == 200
        metrics = client.get("/metrics").text
    assert (
        'modelfactory_rejected_requests_total{model="demand_forecast",reason="invalid"} 9.0'
        in metrics
    )
    assert (
        'modelfactory_rejected_requests_total{model="demand_forecast",reason="too_large"} 2.0'
        in metrics
    )
    assert (
        'modelfactory_rejected_requests_total{model="demand_forecast",reason="missing_values"} 1.0'
        in metrics
    )
    assert 'outcome="error"' not in metrics  # the request's doing, not the model's failure
    assert (
        'modelfactory_requests_total{model="demand_forecast",outcome="ok",role="stable",version="1"} 1.0'
        in metrics
    )


def test_a_model_without_champion_is_not_ready_and_says_why(copy_example) -> None:
    root = copy_example("breast_cancer")
    with serve(root) as server, httpx.Client(base_url=server.url) as client:
        ready = client.get("/ready")
        response = client.post(
            "/models/breast_cancer/predict", json={"rows": [{"mean_radius": 1.0}]}
        )
    assert (
        ready.status_code == 503
        and "no champion yet" in ready.json()["models"]["breast_cancer"]["problem"]
    )
    assert response.status_code == 422  # the schema is known even before a model is


def test_a_killed_server_loses_no_answered_request(copy_example, workdir: Path) -> None:
    root = demand_project(copy_example)
    train_with(root, alpha=1.0)
    port = free_port()
    command = [sys.executable, "-m", "modelfactory", "serve", MODEL, "--port", str(port)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start(*extra: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [*command, *extra],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: _ready(port) or proc.poll() is not None, "the endpoint to start", 120)
        assert proc.poll() is None, proc.stderr.read().decode()
        return proc

    first = start("--flush-every", "3600")  # nothing reaches the warehouse before the kill
    answered = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for i in range(40):
            response = predict(client, [ROW] * (1 + i % 3))
            assert response.status_code == 200
            answered[response.json()["request_id"]] = 1 + i % 3
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert read_inference_log(local_home().warehouse(MODEL), MODEL).empty

    second = start()
    warehouse = local_home().warehouse(MODEL)
    try:
        expected = sum(answered.values())
        wait_for(lambda: len(read_inference_log(warehouse, MODEL)) >= expected, "the spool flushed")
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(30)
    log = read_inference_log(warehouse, MODEL)
    assert log.groupby("request_id").size().to_dict() == answered
    assert set(log["status"]) == {"ok"}


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_canary_whose_artifact_is_corrupt_never_serves_and_is_rolled_back(
    copy_example, mf_home: Path
) -> None:
    root = demand_project(copy_example, steps=[50, 100], min_requests=20)
    train_with(root, alpha=100.0)  # v1
    assert train_with(root, alpha=1.0).promoted  # v2
    newest = max(mf_home.rglob("model.skops"), key=lambda path: path.stat().st_mtime)
    newest.write_bytes(b"not a model")

    with serve(root) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        answers = [predict(client) for _ in range(20)]
        state = serving(client)
        wait_for(lambda: rollout_store().active(MODEL).serving_error, "the endpoint to report")
        tick_canary(root)

    assert state["serving"] == "v1" and state["canary_version"] is None
    assert {(r.status_code, r.json()["predictions"][0]["version"]) for r in answers} == {(200, "1")}
    assert model_registry().champion(MODEL).version == "1"
    latest = rollout_store().latest(MODEL)
    assert latest.state == "rolled_back" and "v2 failed to load" in latest.reason


def test_a_canary_worse_on_late_labels_is_rolled_back(copy_example) -> None:
    from modelfactory.cli.demo import send_traffic, simulated_features, write_labels

    root = demand_project(copy_example, steps=[50, 100], min_requests=100_000)
    edit_spec(root, lambda spec: spec.update(live_metric={"min_labels": 20, "window": 500}))
    train_with(root, alpha=100.0)  # v1
    (root / "train.py").rename(root / "train_ok.py")
    (root / "train.py").write_text(SKEWED_TRAIN)
    assert train_with(root, alpha=1.0).promoted  # v2 passes the gate on the holdout
    project = load_project(root)

    with serve(root) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: serving(client)["canary_version"] == "2", "the canary to load")
        rows = simulated_features(project, n_days=2, start="2026-05-01", seed=9).head(120)
        answered = send_traffic(client, project, rows, rows_per_request=1)
        wait_for(lambda: captured("canary", "2") >= 20, "canary answers in the log")
        wait_for(lambda: captured("stable", "1") >= 20, "stable answers in the log")
        assert "answered" in tick_canary(root).skip_message  # no labels yet: it waits

        write_labels(project, answered, "labels")  # the next day, the truth arrives
        tick = tick_canary(root)

    said = card_refresh(tick).tags["modelfactory/reason"]
    assert "rolled back" in said and "live mae" in said
    assert model_registry().champion(MODEL).version == "1"
    assert rollout_store().latest(MODEL).state == "rolled_back"
    (alert,) = [a for a in read_alerts(local_home().alerts_log) if a.event == "canary_rollback"]
    assert "v2 live mae" in alert.text and "worse" in alert.text
