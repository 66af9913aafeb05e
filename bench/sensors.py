"""Sensor tick cost at rest: one tick of each sensor of a location of N models, in process.

A location of N copies of breast_cancer, each with 200 captured requests already judged and
a label file already judged (the cursors say so), no rollout in progress: the state a
daemon at rest ticks over. Each size runs in its own subprocess with its own home; each
sensor gets one untimed warm-up tick, then --ticks timed ticks (median wall and CPU time).
The daemon's share of a core is estimated as sum(CPU per tick / the sensor's interval);
it leaves out the daemon's own per-sensor work (a gRPC call into the location and a tick
record per sensor per tick), which grows with the number of sensors, not of models.

Run from the repository root, with the package on the path:

    PYTHONPATH=platform .venv/bin/python bench/sensors.py --models 1 50 100
    PYTHONPATH=/other/checkout/platform .venv/bin/python bench/sensors.py --label main

The second form times another checkout's sensors (the per-model API of before is detected).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "RESULT "
ROWS = 200


def module(path: str, before: str) -> Any:
    """A module of the package at its place in the layers, or where it was before them (to
    time another checkout's sensors)."""
    try:
        return importlib.import_module(f"modelfactory.{path}")
    except ModuleNotFoundError:
        return importlib.import_module(f"modelfactory.{before}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[1, 50, 100])
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--label", default="this branch")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(RESULT_PREFIX + json.dumps(measure(args.worker, args.ticks)), flush=True)
        return
    for n in args.models:
        result = run_worker(n, args.ticks)
        for sensor, (wall, cpu, interval, count) in sorted(result["sensors"].items()):
            print(
                f"{args.label} | {n} models | {sensor} (x{count}) | wall {wall * 1000:.1f} ms | "
                f"cpu {cpu * 1000:.1f} ms | every {interval}s"
            )
        print(f"{args.label} | {n} models | share of a core: {result['share']:.2%}")


def run_worker(n: int, ticks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-sensors-") as tmp:
        env = {**os.environ, "MODELFACTORY_HOME": f"{tmp}/home", "DAGSTER_HOME": f"{tmp}/dg"}
        Path(env["DAGSTER_HOME"]).mkdir()
        command = [sys.executable, __file__, "--worker", str(n), "--ticks", str(ticks)]
        out = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        said = [x for x in out.stderr.splitlines() if x.startswith(("bc", "modelfactory_"))]
        print("\n".join(said[:8]), file=sys.stderr)  # what the sensors said: at rest?
        line = next(x for x in out.stdout.splitlines() if x.startswith(RESULT_PREFIX))
        return json.loads(line.removeprefix(RESULT_PREFIX))


def measure(n: int, ticks: int) -> dict[str, Any]:
    """In the worker: build the location, bring it to rest, time each sensor's ticks."""
    from dagster import DagsterInstance

    projects = make_projects(Path.cwd() / "model_projects", n)
    sensors, cursors = location_sensors(projects)
    instance = DagsterInstance.get()
    timed: dict[str, list[tuple[float, float]]] = {}
    intervals: dict[str, int] = {}
    for sensor in sensors:
        if sensor.name.endswith("run_failures") or sensor.name.endswith("score_refreshed"):
            continue  # run-status sensors: one event-log read per tick, whatever the models
        kind = concern(sensor.name)
        cursor = cursors.get(sensor.name)
        # Warm-up (imports, first connections); its cursor carries on, as the daemon's does.
        *_, said, cursor = tick(sensor, instance, projects[0].name, cursor)
        print(f"{sensor.name}: {said[:160]}", file=sys.stderr)
        timed.setdefault(kind, []).extend(
            tick(sensor, instance, projects[0].name, cursor)[:2] for _ in range(ticks)
        )
        intervals[kind] = sensor.minimum_interval_seconds or 30
    result = {}
    for kind, samples in timed.items():
        count = len(samples) // ticks
        wall = statistics.median(s[0] for s in samples) * count  # per tick of all such sensors
        cpu = statistics.median(s[1] for s in samples) * count
        result[kind] = (wall, cpu, intervals[kind], count)
    share = sum(cpu / interval for _, cpu, interval, _ in result.values())
    return {"sensors": result, "share": share}


def concern(name: str) -> str:
    for kind in ("canary", "drift", "live_metric", "new_segments"):
        if name.endswith(kind):
            return kind
    return name


def tick(
    sensor: Any, instance: Any, model: str, cursor: str | None
) -> tuple[float, float, str, str | None]:
    from dagster import build_sensor_context

    project_resources = module("orchestration.resources", "resources").project_resources

    with build_sensor_context(
        instance=instance, resources=project_resources(model), cursor=cursor
    ) as context:
        wall, cpu = time.perf_counter(), time.process_time()
        result = sensor(context)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        said = str(getattr(result, "skip_message", None) or result)
        return wall, cpu, said, context.cursor or cursor


def make_projects(folder: Path, n: int) -> list[Any]:
    """N copies of breast_cancer, each with a judged inference log and label file."""
    import yaml

    load_project = module("project.loader", "project").load_project

    projects = []
    for i in range(n):
        name = f"bc{i:03d}"
        target = folder / name
        shutil.copytree(ROOT / "model_projects" / "breast_cancer", target)
        spec = yaml.safe_load((target / "model.yaml").read_text())
        spec["name"] = name
        (target / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        projects.append(load_project(target))
        capture(name)
    return projects


def capture(model: str) -> None:
    """ROWS answered rows in the model's inference log, as the endpoint captures them, and a
    label file for them."""
    from pydantic_core import to_json

    from modelfactory.serving.capture import CaptureFlusher, CaptureSpool

    local_home = module("stores.home", "resources").local_home

    home = local_home().ensure()
    spool = CaptureSpool(home.capture(model))
    start = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    for i in range(ROWS // 50):
        record = {
            "request_id": f"r{i}",
            "received_at": (start + timedelta(seconds=i)).isoformat(),
            "model_version": "1",
            "role": "stable",
            "status": "ok",
            "error": None,
            "latency_ms": 2.0,
            "inputs": [{"mean_radius": 14.0 + j / 50} for j in range(50)],
            "outputs": [1] * 50,
            "scores": None,
        }
        spool.append(to_json(record))
    spool.close()
    CaptureFlusher(model, spool, home.warehouse(model)).flush()
    folder = home.labels(model)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [f"r{i},{j},1" for i in range(ROWS // 50) for j in range(50)]
    (folder / "labels.csv").write_text("request_id,row_index,malignant\n" + "\n".join(rows))


def location_sensors(projects: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """The location's sensors and the cursors of a location at rest (everything judged), for
    this checkout's one-sensor-per-concern API or the per-model one before it."""
    sensors = module("orchestration.sensors", "sensors")
    build_definitions = module("orchestration.definitions", "assets").build_definitions

    every = [build_definitions(p) for p in projects]
    if "models" not in inspect.signature(sensors.build_sensors).parameters:  # per model
        found = [s for defs in every for s in defs.sensors]
        return found, {s.name: rest_cursor(s.name) for s in found}
    jobs = [
        {j.name.removeprefix(f"{p.name}_"): j for j in d.jobs}
        for p, d in zip(projects, every, strict=True)
    ]
    found = sensors.build_sensors(list(zip(projects, jobs, strict=True)))
    units = [p.name for p in projects]
    return found, {s.name: rest_cursor_json(s.name, units) for s in found}


def rest_cursor(sensor: str) -> str | None:
    """A per-model sensor's cursor (`<model>_drift`, ...) once everything it sees was judged."""
    find_labels = module("ml.live", "live").find_labels
    local_home = module("stores.home", "resources").local_home

    if sensor.endswith("_drift"):
        return (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    if sensor.endswith("_live_metric"):
        model = sensor.removesuffix("_live_metric")
        return f"{find_labels(local_home().labels(model)).fingerprint}|"
    return None


def rest_cursor_json(sensor: str, units: list[str]) -> str | None:
    """A location sensor's cursor, every unit judged."""
    find_labels = module("ml.live", "live").find_labels
    local_home = module("stores.home", "resources").local_home

    if sensor.endswith("_drift"):
        judged = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        return json.dumps({"units": dict.fromkeys(units, judged)})
    if sensor.endswith("_live_metric"):
        prints = {u: f"{find_labels(local_home().labels(u)).fingerprint}|" for u in units}
        return json.dumps({"units": prints})
    return None


if __name__ == "__main__":
    main()
