"""Idle CPU of `modelfactory serve` with N models, before and after the O(1) route refresh.

For each size N (`--models 10,100`) and each tree (`--before main`, the working tree after),
it copies the tree to a temporary folder (bench/scale.py's make_copy), replaces its model
projects with N from the `modelfactory new` templates (written in this process, alternately
regression and classification), registers one tiny scikit-learn model as version 1 of every
one of them in a fresh MLflow registry (sqlite, in a fresh MODELFACTORY_HOME) and sets the
`champion` alias, then starts `modelfactory serve` on the copy's code and waits for /ready
(every route loaded). After `--settle` seconds it reads the server's CPU (utime + stime) over
`--cpu-window` seconds with no traffic, as % of one core. Its threads at rest: the route
refresher (every `--refresh` s) and one capture flusher per model (every second).

The machine is shared, so the load average is noted beside each figure.
Results: bench/results/serving_refresh.md (`--output`).

    make bench-serving-refresh BENCH_ARGS="--models 10,100 --cpu-window 60"
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelfactory.project.scaffold import ProjectAnswers, write_project

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import (
    REPO,
    BenchError,
    commit,
    copy_env,
    cpu_seconds,
    load_average,
    machine,
    make_copy,
    remove_projects,
)

TARGET_CPU = 2.0  # % of one core at 100 models, issue 19


@dataclass
class Result:
    tree: str
    models: int
    ready_s: float | None = None
    cpu: float | None = None
    load: str = ""
    error: str = ""


def model_names(count: int) -> list[str]:
    return [f"bench_s{i:03d}" for i in range(1, count + 1)]


def write_projects(copy: Path, names: Sequence[str]) -> None:
    """N projects from the `modelfactory new` templates, without training them."""
    for i, name in enumerate(names):
        task = "classification" if i % 2 else "regression"
        write_project(ProjectAnswers(name=name, task=task), copy / "model_projects" / name)


def register_champions(env: dict[str, str], names: Sequence[str]) -> None:
    """v1 of every model, one tiny estimator logged once, and `champion` on it (set directly:
    what serves is all that matters at rest)."""
    script = f"""
import pandas as pd
from mlflow import MlflowClient
from sklearn.linear_model import LinearRegression
from modelfactory.stores.home import model_registry

names = {list(names)!r}
registry = model_registry()
X = pd.DataFrame({{"x1": [0.0, 1.0, 2.0], "x2": [1.0, 0.0, 1.0]}})
first = registry.log_candidate(model=names[0], estimator=LinearRegression().fit(X, X.x1),
                               X_sample=X, params={{}}, metrics={{}}, tags={{}})
client = MlflowClient(tracking_uri=registry.tracking_uri)
source = client.get_model_version(names[0], "1").source
for name in names:
    if name != names[0]:
        client.create_registered_model(name)
        client.create_model_version(name, source, run_id=first.run_id)
    client.set_registered_model_alias(name, "champion", "1")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise BenchError(f"registering the models failed: {done.stderr.strip()[-800:]}")


def wait_ready(port: int, proc: subprocess.Popen, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise BenchError(f"modelfactory serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise BenchError(f"/ready not 200 after {timeout:.0f} s")


def measure(copy: Path, env: dict[str, str], result: Result, args: argparse.Namespace) -> None:
    port = args.port
    command = [sys.executable, "-m", "modelfactory", "serve", "--port", str(port)]
    command += ["--refresh", str(args.refresh), *args.serve_args.split()]
    log = open(Path(env["MODELFACTORY_HOME"]) / "serve.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        command, cwd=copy, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        result.ready_s = wait_ready(port, proc, args.timeout)
        time.sleep(args.settle)
        before, started = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.cpu_window)
        used = cpu_seconds(proc.pid) - before
        result.cpu = 100 * used / (time.monotonic() - started)
        result.load = load_average()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def run_one(tree: str, ref: str | None, count: int, args: argparse.Namespace) -> Result:
    result = Result(tree=tree, models=count)
    with tempfile.TemporaryDirectory(prefix="mf-serve-bench-") as tmp:
        try:
            copy = make_copy(REPO, Path(tmp) / "repo", ref)
            remove_projects(copy)
            names = model_names(count)
            write_projects(copy, names)
            env = copy_env(copy, Path(tmp))
            register_champions(env, names)
            measure(copy, env, result, args)
        except (BenchError, subprocess.TimeoutExpired) as exc:
            result.error = str(exc)
    print(f"{tree} {count} models: {result}", flush=True)
    return result


def report(results: Sequence[Result], args: argparse.Namespace) -> str:
    lines = [
        "# `modelfactory serve` at rest: idle CPU by number of models",
        "",
        f"`make bench-serving-refresh` (bench/serving_refresh.py), {time.strftime('%Y-%m-%d')}, "
        f"{machine()}. Before: {commit(args.before)}; after: the working tree at "
        f"{commit()}. No traffic; refresh every {args.refresh} s; CPU of the server "
        f"process over {args.cpu_window:.0f} s after {args.settle:.0f} s at rest; target "
        f"<= {TARGET_CPU} % of a core at 100 models.",
        "",
        "| tree | models | ready after (s) | idle CPU (% of a core) | load average | note |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in results:
        ready = f"{r.ready_s:.1f}" if r.ready_s is not None else "-"
        cpu = f"{r.cpu:.1f}" if r.cpu is not None else "-"
        lines.append(f"| {r.tree} | {r.models} | {ready} | {cpu} | {r.load} | {r.error} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="10,100", help="comma-separated fleet sizes")
    parser.add_argument("--before", default="main", help="the git ref measured as before")
    parser.add_argument("--no-before", action="store_true", help="measure the working tree only")
    parser.add_argument("--refresh", type=float, default=1.0)
    parser.add_argument("--serve-args", default="", help="more options for modelfactory serve")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--cpu-window", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to /ready")
    parser.add_argument("--port", type=int, default=8350)
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/serving_refresh.md")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    trees = [] if args.no_before else [(f"before ({args.before})", args.before)]
    trees.append(("after", None))
    results = [
        run_one(tree, ref, int(count), args)
        for count in args.models.split(",")
        for tree, ref in trees
    ]
    args.output.write_text(report(results, args))
    print(args.output.read_text())


if __name__ == "__main__":
    main()
