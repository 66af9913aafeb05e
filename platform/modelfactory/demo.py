"""The closing-the-loop story in one process: `modelfactory demo --drift`.

1. Train and promote the model (once).
2. Serve it; send simulated requests, then their labels, as they would arrive a day later.
3. The world changes (the simulator's `drift` and `concept` knobs): a new batch of sales
   data lands, live inputs move, and the labels show the forecasts are off.
4. Tick the drift and live-metric sensors, as the Dagster daemon would: each requests a
   retrain, and both say why.
5. Run the retrain: the new candidate is compared with the champion on the newest data and,
   being better there, is promoted; the endpoint starts its canary.

Without a daemon, this module plays the daemon; under `make dev` the same happens by itself.
The traffic and label helpers are also what the tests drive the real endpoint with.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelfactory import datasets
from modelfactory.errors import DemoError
from modelfactory.project import ModelProject
from modelfactory.resources import inference_store, local_home

if TYPE_CHECKING:
    from pathlib import Path

    import httpx
    import pandas as pd
    from dagster import DagsterInstance, ExecuteInProcessResult

__all__ = [
    "DemoOutcome",
    "run_drift_demo",
    "run_requested",
    "send_traffic",
    "simulated_features",
    "tick",
    "wait_until_captured",
    "wait_until_serving",
    "write_labels",
]

Echo = Callable[[str], None]


def simulated_features(project: ModelProject, **knobs: Any) -> pd.DataFrame:
    """Features of simulated raw data (simulate.py's `simulate(**knobs)`), target included."""
    raw = project.module("simulate").simulate(**knobs)
    return project.function("features", "build_features")(raw)


def send_traffic(
    client: httpx.Client, project: ModelProject, features: pd.DataFrame, rows_per_request: int = 50
) -> pd.DataFrame:
    """POST the inputs of `features` to the endpoint; return what was answered, one row per
    input row: request_id, row_index, model_version, prediction and the true target."""
    import pandas as pd

    spec = project.spec
    rows = json.loads(datasets.inputs(features, spec).to_json(orient="records"))
    wait_until_serving(client, project)
    answered = []
    for start in range(0, len(rows), rows_per_request):
        response = client.post(
            f"/models/{project.name}/predict", json={"rows": rows[start : start + rows_per_request]}
        )
        if response.status_code != 200:
            raise DemoError(
                f"{project.name}: the endpoint answered {response.status_code}: {response.text}"
            )
        body = response.json()
        for index, prediction in enumerate(body["predictions"]):
            answered.append(
                {
                    "request_id": body["request_id"],
                    "row_index": index,
                    "model_version": prediction["version"],
                    "prediction": prediction["prediction"],
                    spec.target: features[spec.target].iloc[start + index],
                }
            )
    return pd.DataFrame(answered)


def wait_until_serving(client: httpx.Client, project: ModelProject, timeout: float = 60.0) -> None:
    """Block until the endpoint has loaded the model's champion (it loads in the background)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = client.get("/models").json().get(project.name, {})
        if model.get("serving"):
            return
        time.sleep(0.1)
    raise DemoError(f"{project.name}: the endpoint did not load a champion in {timeout:.0f}s")


def write_labels(project: ModelProject, answered: pd.DataFrame, name: str) -> Path:
    """The late labels of answered rows, as a file in the model's labels folder."""
    folder = local_home().labels(project.name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    answered[["request_id", "row_index", project.spec.target]].to_csv(path, index=False)
    return path


def wait_until_captured(project: ModelProject, rows: int, timeout: float = 60.0) -> None:
    """Block until the endpoint's capture has moved `rows` rows into the warehouse."""
    import time

    from modelfactory.serving.capture import WarehouseBusy, read_inference_log

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(read_inference_log(inference_store(project.name), project.name)) >= rows:
                return
        except WarehouseBusy:
            pass
        time.sleep(0.2)
    raise DemoError(f"{project.name}: fewer than {rows} captured rows after {timeout:.0f}s")


def tick(
    project: ModelProject, sensor_name: str, instance: DagsterInstance, cursor: str | None = None
) -> tuple[Any, str | None]:
    """One evaluation of a model's sensor, as the daemon runs it; returns (result, cursor)."""
    from dagster import build_sensor_context

    from modelfactory.assets import build_definitions
    from modelfactory.resources import project_resources

    sensor = build_definitions(project).resolve_sensor_def(sensor_name)
    context = build_sensor_context(
        instance=instance, resources=project_resources(project.name), cursor=cursor
    )
    return sensor(context), context.cursor


def run_requested(
    project: ModelProject, request: Any, instance: DagsterInstance
) -> ExecuteInProcessResult:
    """Run what a sensor requested, in this process, with the request's tags."""
    from modelfactory.assets import build_definitions

    job = build_definitions(project).resolve_job_def(request.job_name)
    return job.execute_in_process(
        instance=instance,
        tags=request.tags,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )


@dataclass(frozen=True)
class DemoOutcome:
    first_champion: str
    new_champion: str | None
    promoted: bool
    old_metric_on_new_data: float
    new_metric_on_new_data: float
    requested_by: list[str]  # the sensors that asked for the retrain


def run_drift_demo(
    project: ModelProject,
    *,
    echo: Echo = print,
    drift: float = 0.2,
    concept: float = 0.3,
    days: int = 90,
) -> DemoOutcome:
    """The whole story on the model in `project` (one with a simulate.py); see the module doc."""
    import httpx

    from modelfactory.resources import model_registry, rollout_store
    from modelfactory.runs import local_instance, seed_data, train
    from modelfactory.sensors import drift_sensor_name, live_metric_sensor_name
    from modelfactory.serving import create_app
    from modelfactory.serving.server import BackgroundServer

    name, spec = project.name, project.spec
    _require_simulator(project)
    instance = local_instance()
    registry = model_registry()
    echo(f"1. train {name}")
    seed_data(project)
    first = registry.champion(name)
    if first is None:
        outcome = train(project, approve=True, instance=instance)
        if not outcome.promoted:
            raise DemoError(f"{name}: the first training did not promote: {outcome.decision}")
        first = registry.champion(name)
    assert first is not None
    echo(
        f"   champion v{first.version}, holdout {spec.metric.name} "
        f"{first.tags.get(f'mf.holdout.{spec.metric.name}', '?')}"
    )

    cursors: dict[str, str | None] = {}
    sensors = {"drift": drift_sensor_name(name), "live metric": live_metric_sensor_name(name)}
    app = create_app(
        [project], registry=registry, rollouts=rollout_store(), home=local_home().ensure()
    )
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        captured = 0
        last_day = _last_day(project)
        window = spec.drift.window
        calm = simulated_features(project, n_days=days, start=_after(last_day, 1), seed=101)
        calm = calm.sample(frac=1.0, random_state=7).head(window)
        echo(f"2. serve it at {server.url}: {len(calm)} rows of ordinary traffic, then labels")
        answered = send_traffic(client, project, calm)
        captured += len(answered)
        wait_until_captured(project, captured)
        write_labels(project, answered, "labels-ordinary")
        for what, sensor in sensors.items():
            result, cursors[sensor] = tick(project, sensor, instance)
            echo(f"   {what} sensor: {_said(result)}")

        echo(f"3. the world changes: drift={drift}, concept={concept} for {days} days")
        knobs = {"n_days": days, "start": _after(last_day, days + 1), "seed": 202}
        knobs |= {"drift": drift, "concept": concept}
        project.module("simulate").new_batch(local_home().data(name), "sales-changed", **knobs)
        changed = simulated_features(project, **knobs).sample(frac=1.0, random_state=7)
        changed = changed.head(max(window, spec.live_metric.min_labels))
        answered = send_traffic(client, project, changed)
        captured += len(answered)
        wait_until_captured(project, captured)
        write_labels(project, answered, "labels-changed")
        echo(f"   a new batch of sales landed; {len(answered)} requests answered and labelled")

    echo("4. the sensors, as the daemon ticks them")
    requests, requested_by = [], []
    for what, sensor in sensors.items():
        result, _ = tick(project, sensor, instance, cursors[sensor])
        echo(f"   {what} sensor: {_said(result)}")
        if isinstance(result, list) and result:
            requested_by.append(what)
            requests.extend(result)
    retrain = next((r for r in requests if r.job_name.endswith("_train")), None)
    if retrain is None:
        raise DemoError(f"{name}: no sensor requested a retrain; try a larger --drift")

    echo(f"5. the retrain ({retrain.tags.get('modelfactory/trigger')}) and its evidence")
    for request in requests:
        if request.job_name != retrain.job_name:  # the evidence: drift report, live metrics
            result = run_requested(project, request, instance)
            echo(f"   {request.job_name}: {'done' if result.success else 'failed'}")
    result = run_requested(project, retrain, instance)
    if not result.success:
        raise DemoError(f"{name}: the retrain failed (run {result.run_id})")
    evaluation = result.output_for_node(f"{name}__evaluation")
    champion = result.output_for_node(f"{name}__champion")
    metric = spec.metric.name
    old = (evaluation["champion_scores"] or {}).get(metric, float("nan"))
    new = evaluation["scores"][metric]
    echo(
        f"   on the newest data: champion v{first.version} {metric} {old:.3f}, "
        f"candidate v{evaluation['candidate'].version} {metric} {new:.3f}"
    )
    echo(f"   {champion['decision']}")
    return DemoOutcome(
        first_champion=first.version,
        new_champion=champion["version"],
        promoted=bool(champion["promoted"]),
        old_metric_on_new_data=old,
        new_metric_on_new_data=new,
        requested_by=requested_by,
    )


def _require_simulator(project: ModelProject) -> None:
    from modelfactory.errors import ProjectError

    simulate = project.module("simulate") if project.has_simulator else None
    missing = [f for f in ("simulate", "new_batch") if not hasattr(simulate, f)]
    if missing:
        raise ProjectError(
            f"{project.shown('simulate.py')}: the drift demo needs {' and '.join(missing)}() "
            "(see model_projects/demand_forecast/simulate.py)"
        )


def _last_day(project: ModelProject) -> Any:
    """The latest day in the model's raw data, so new traffic comes after it."""
    import pandas as pd

    raw = project.function("features", "load_raw")(local_home().data(project.name))
    column = project.spec.split.by
    return pd.Timestamp(raw[column].max()) if column else pd.Timestamp.now().normalize()


def _after(day: Any, days: int) -> str:
    import pandas as pd

    return str((day + pd.Timedelta(days=days)).date())


def _said(result: Any) -> str:
    """What a sensor evaluation decided, in one line."""
    if isinstance(result, list):
        if not result:
            return "nothing to do"
        why = ", ".join(
            f"{key.removeprefix('modelfactory/')}={value}"
            for key, value in result[0].tags.items()
            if key != "modelfactory/model"
        )
        return f"requested {', '.join(r.job_name for r in result)} ({why})"
    return getattr(result, "skip_message", None) or str(result)
