"""The closing-the-loop story in one process: `modelfactory demo --drift`.

1. Train and promote the model (once; each segment's, for a segmented model).
2. Serve it; send simulated requests, then their labels, as they would arrive a day later.
3. The world changes (the simulator's `drift` and `concept` knobs), in one segment only for
   a segmented model: a new batch of sales data lands, live inputs move, and the labels
   show the forecasts are off.
4. Tick the drift and live-metric sensors, as the Dagster daemon would: each requests a
   retrain of what changed (and only that), and both say why.
5. Run the retrain: the new candidate is compared with the champion on the newest data and,
   being better there, is promoted; the endpoint starts its canary. The other segments keep
   their champions.

Without a daemon, this module plays the daemon; under `make dev` the same happens by itself.
The traffic and label helpers are also what the tests drive the real endpoint with.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
from dagster import build_sensor_context

from modelfactory.errors import DemoError, ProjectError
from modelfactory.ml import datasets
from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.resources import project_resources
from modelfactory.orchestration.runs import resolve_segments, seed_data, segments_now, train
from modelfactory.orchestration.sensors import DRIFT_SENSOR, LIVE_METRIC_SENSOR
from modelfactory.project.loader import ModelProject
from modelfactory.project.segments import SEPARATOR, segment_model
from modelfactory.serving import create_app
from modelfactory.serving.server import BackgroundServer
from modelfactory.stores.home import inference_store, local_home, model_registry, rollout_store
from modelfactory.stores.inference_log import WarehouseBusy
from modelfactory.stores.inference_reader import read_inference_log
from modelfactory.stores.instance import local_instance

if TYPE_CHECKING:
    from pathlib import Path

    from dagster import DagsterInstance, ExecuteInProcessResult

__all__ = [
    "DemoOutcome",
    "Retrain",
    "run_drift_demo",
    "run_requested",
    "send_traffic",
    "simulated_features",
    "tick",
    "units_of",
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
    """Block until the endpoint has loaded the champion of the model (of each of its
    segments): it loads them in the background."""
    units = set(units_of(project))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        models = client.get("/models").json()
        if all((models.get(unit) or {}).get("serving") for unit in units):
            return
        time.sleep(0.1)
    raise DemoError(f"{project.name}: the endpoint did not load a champion in {timeout:.0f}s")


def units_of(project: ModelProject) -> list[str]:
    """What has a champion of its own: the model, or each of its segments (`<model>.<seg>`)."""

    return [segment_model(project.name, segment) for segment in segments_now(project)]


def write_labels(project: ModelProject, answered: pd.DataFrame, name: str) -> Path:
    """The late labels of answered rows, as a file in the model's labels folder."""
    folder = local_home().labels(project.name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    answered[["request_id", "row_index", project.spec.target]].to_csv(path, index=False)
    return path


def wait_until_captured(project: ModelProject, rows: int, timeout: float = 60.0) -> None:
    """Block until the endpoint's capture has moved `rows` rows into the warehouse (into
    the logs of all the model's segments together)."""
    units = units_of(project)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if sum(len(read_inference_log(inference_store(u), u)) for u in units) >= rows:
                return
        except WarehouseBusy:
            pass
        time.sleep(0.2)
    raise DemoError(f"{project.name}: fewer than {rows} captured rows after {timeout:.0f}s")


def tick(
    project: ModelProject, sensor_name: str, instance: DagsterInstance, cursor: str | None = None
) -> tuple[Any, str | None]:
    """One evaluation of a model's sensor, as the daemon runs it; returns (result, cursor)."""
    sensor = build_definitions(project).resolve_sensor_def(sensor_name)
    context = build_sensor_context(
        instance=instance, resources=project_resources(project.name), cursor=cursor
    )
    return sensor(context), context.cursor


def run_requested(
    project: ModelProject, request: Any, instance: DagsterInstance
) -> ExecuteInProcessResult:
    """Run what a sensor requested, in this process, with the request's tags."""

    job = build_definitions(project).resolve_job_def(request.job_name)
    return job.execute_in_process(
        instance=instance,
        tags=request.tags,
        partition_key=request.partition_key,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )


@dataclass(frozen=True)
class Retrain:
    """One retrain the sensors asked for, run: the model's, or one segment's."""

    unit: str  # the model, or `<model>.<segment>`
    first_champion: str
    new_champion: str | None
    promoted: bool
    decision: str
    old_metric_on_new_data: float
    new_metric_on_new_data: float


@dataclass(frozen=True)
class DemoOutcome:
    retrains: list[Retrain]
    requested_by: list[str]  # the sensors that asked for a retrain
    champions: dict[str, str]  # unit -> champion version at the end


def run_drift_demo(
    project: ModelProject,
    *,
    echo: Echo = print,
    drift: float = 0.2,
    concept: float = 0.3,
    days: int = 90,
    segment: str | None = None,
) -> DemoOutcome:
    """The whole story on the model in `project` (one with a simulate.py); see the module doc.

    For a segmented model the world changes in one segment (`segment`, else the last one):
    every segment is served and judged, and only the changed one retrains.
    """
    name, spec = project.name, project.spec
    _require_simulator(project, segmented=spec.segments is not None)
    instance = local_instance()
    seed_data(project)
    segments = resolve_segments(project, [segment] if segment else [], instance)
    changed = (segment or segments[-1]) if segments else None
    echo(f"1. train {name}" + (f", one model per {spec.segments.by}" if segments else ""))
    first = _first_champions(project, segments or [None], instance, echo)

    cursors: dict[str, str | None] = {}
    sensors = {"drift": DRIFT_SENSOR, "live metric": LIVE_METRIC_SENSOR}
    app = create_app(
        [project], registry=model_registry(), rollouts=rollout_store(), home=local_home().ensure()
    )
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        captured = 0
        last_day = _last_day(project)
        window = spec.drift.window
        calm = simulated_features(project, n_days=days, start=_after(last_day, 1), seed=101)
        calm = _each_segment_head(calm.sample(frac=1.0, random_state=7), spec, window)
        each = " per segment" if segments else ""
        echo(f"2. serve it at {server.url}: {window} rows{each} of ordinary traffic, then labels")
        answered = send_traffic(client, project, calm)
        captured += len(answered)
        wait_until_captured(project, captured)
        write_labels(project, answered, "labels-ordinary")
        for what, sensor in sensors.items():
            result, cursors[sensor] = tick(project, sensor, instance)
            echo(f"   {what} sensor: {_said(result, name)}")

        where = f" in {spec.segments.by} {changed!r} only" if changed else ""
        echo(f"3. the world changes{where}: drift={drift}, concept={concept} for {days} days")
        knobs = {"n_days": days, "start": _after(last_day, days + 1), "seed": 202}
        knobs |= {"drift": drift, "concept": concept} | ({"only": [changed]} if changed else {})
        project.module("simulate").new_batch(local_home().data(name), "sales-changed", **knobs)
        rows = max(window, spec.live_metric.min_labels)
        new = simulated_features(project, **knobs).sample(frac=1.0, random_state=7)
        answered = send_traffic(client, project, _each_segment_head(new, spec, rows))
        captured += len(answered)
        wait_until_captured(project, captured)
        write_labels(project, answered, "labels-changed")
        echo(f"   a new batch of sales landed; {len(answered)} requests answered and labelled")

    echo("4. the sensors, as the daemon ticks them")
    requests, requested_by = [], []
    for what, sensor in sensors.items():
        result, _ = tick(project, sensor, instance, cursors[sensor])
        echo(f"   {what} sensor: {_said(result, name)}")
        if isinstance(result, list) and any(r.job_name.endswith("_train") for r in result):
            requested_by.append(what)
            requests.extend(result)
    if not requested_by:
        raise DemoError(f"{name}: no sensor requested a retrain; try a larger --world-drift")

    echo("5. the retrain and its evidence")
    retrains = [
        _run_request(project, request, first, instance, echo) for request in _once_each(requests)
    ]
    retrains = [r for r in retrains if r is not None]
    champions = _champions(project)
    echo("   champions now: " + ", ".join(f"{u} v{v}" for u, v in champions.items()))
    return DemoOutcome(retrains=retrains, requested_by=requested_by, champions=champions)


def _first_champions(
    project: ModelProject, segments: list[str | None], instance: Any, echo: Echo
) -> dict[str, str]:
    """Each unit's champion, training (and approving) the first one where there is none."""

    registry, metric = model_registry(), project.spec.metric.name
    first = {}
    for segment in segments:
        unit = segment_model(project.name, segment)
        if registry.champion(unit) is None:
            outcome = train(project, approve=True, instance=instance, segment=segment)
            if not outcome.promoted:
                raise DemoError(f"{unit}: the first training did not promote: {outcome.decision}")
        champion = registry.champion(unit)
        assert champion is not None
        first[unit] = champion.version
        holdout = champion.holdout_metrics.get(metric, "?")
        echo(f"   {unit}: champion v{champion.version}, holdout {metric} {holdout}")
    return first


def _each_segment_head(frame: pd.DataFrame, spec: Any, rows: int) -> pd.DataFrame:
    """The first `rows` rows of each segment (of the whole frame, unsegmented)."""
    if spec.segments is None:
        return frame.head(rows)
    return frame.groupby(spec.segments.by, sort=False).head(rows)


def _once_each(requests: list[Any]) -> list[Any]:
    """Both sensors may ask for the same run; the daemon runs it once (by run key), and so
    does the demo: evidence runs first, then each segment's retrain."""
    seen, ordered = set(), []
    for request in sorted(requests, key=lambda r: r.job_name.endswith("_train")):
        key = (request.job_name, request.partition_key)
        if key not in seen:
            seen.add(key)
            ordered.append(request)
    return ordered


def _run_request(
    project: ModelProject, request: Any, first: dict[str, str], instance: Any, echo: Echo
) -> Retrain | None:
    """Run a requested run; for a retrain, say how the candidate did against the champion."""

    name, metric = project.name, project.spec.metric.name
    label = f"{request.job_name}" + (f"[{request.partition_key}]" if request.partition_key else "")
    result = run_requested(project, request, instance)
    if not request.job_name.endswith("_train"):  # the evidence: drift report, live metrics
        echo(f"   {label}: {'done' if result.success else 'failed'}")
        return None
    if not result.success:
        raise DemoError(f"{label}: the retrain failed (run {result.run_id})")
    unit = segment_model(name, request.partition_key)
    evaluation = result.output_for_node(f"{name}__evaluation")
    champion = result.output_for_node(f"{name}__champion")
    old = (evaluation["champion_scores"] or {}).get(metric, float("nan"))
    new = evaluation["scores"][metric]
    echo(
        f"   {label}, on the newest data: champion v{first[unit]} {metric} {old:.3f}, "
        f"candidate v{evaluation['candidate'].version} {metric} {new:.3f}"
    )
    echo(f"   {champion['decision']}")
    return Retrain(
        unit=unit,
        first_champion=first[unit],
        new_champion=champion["version"],
        promoted=bool(champion["promoted"]),
        decision=champion["decision"],
        old_metric_on_new_data=old,
        new_metric_on_new_data=new,
    )


def _champions(project: ModelProject) -> dict[str, str]:
    registry = model_registry()
    found = {unit: registry.champion(unit) for unit in units_of(project)}
    return {unit: version.version for unit, version in found.items() if version is not None}


def _require_simulator(project: ModelProject, *, segmented: bool) -> None:
    """The demo drives the project's simulator; name what it lacks before anything runs."""
    simulate = project.module("simulate") if project.has_simulator else None
    missing = [f"{f}()" for f in ("simulate", "new_batch") if not hasattr(simulate, f)]
    if not missing and segmented and "only" not in inspect.signature(simulate.simulate).parameters:
        missing = ["simulate(only=...), to change one segment's world"]
    if missing:
        raise ProjectError(
            f"{project.shown('simulate.py')}: the drift demo needs {' and '.join(missing)} "
            "(see model_projects/demand_forecast/simulate.py)"
        )


def _last_day(project: ModelProject) -> Any:
    """The latest day in the model's raw data, so new traffic comes after it."""
    raw = project.function("features", "load_raw")(local_home().data(project.name))
    column = project.spec.split.by
    return pd.Timestamp(raw[column].max()) if column else pd.Timestamp.now().normalize()


def _after(day: Any, days: int) -> str:
    return str((day + pd.Timedelta(days=days)).date())


def _said(result: Any, model: str) -> str:
    """What a sensor evaluation decided: one line, or one per segment it judged."""
    if isinstance(result, list):
        if not result:
            return "nothing to do"
        why = ", ".join(
            f"{key.removeprefix('modelfactory/')}={value}"
            for key, value in result[0].tags.items()
            if key != "modelfactory/model" and not key.startswith("dagster/")
        )
        runs = [r.job_name + (f"[{r.partition_key}]" if r.partition_key else "") for r in result]
        return f"requested {', '.join(runs)} ({why})"
    said = getattr(result, "skip_message", None) or str(result)
    # A segmented model's sensors join their segments' reasons with "; <model>.<segment>: ".
    each = re.split(rf"; (?={re.escape(model)}{re.escape(SEPARATOR)})", said)
    return "\n     ".join(each) if len(each) > 1 else said
