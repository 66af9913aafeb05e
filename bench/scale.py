"""A fleet under `dagster dev`: how N generated model projects load, weigh and idle.

For each size N (`--models 10,100`) it copies the repository to a temporary folder (the
working tree, without .git, .venv, .modelfactory and other local state), removes the model
projects already there (unless `--keep-examples`), adds N with `modelfactory new`, and starts
`dagster dev` on the copy's own workspace.yaml (DAGSTER_HOME and MODELFACTORY_HOME in the
temporary folder). The copy's platform/ is on PYTHONPATH, so what is measured is this
checkout's code, whatever layout its workspace.yaml has: one location per model, one for
all of model_projects/, a component. Locations are read from GraphQL, never assumed. Then:

- loaded: seconds from `dagster dev`'s start until every location is loaded without error
  and every generated model's `<name>/...` steps are asset nodes in the webserver (GraphQL);
- sensors: every sensor is switched on (those not RUNNING by default are started through
  GraphQL), and the ticks during the CPU window are counted, so "at rest" means "with every
  sensor running", not "with nothing scheduled";
- CPU at rest: utime+stime (with reaped children) of the daemon's process tree, and of the
  whole tree (sensor bodies run in the code servers), over `--cpu-window` seconds, as % of
  one core;
- memory at rest: RSS and PSS summed over the whole process tree (bench/dev_memory.py's
  reading of /proc), once the total has settled, and the process count;
- validate: seconds of `dagster definitions validate` on the copy's workspace, after
  `dagster dev` has stopped.

The machine is shared, so the load average is noted beside each measurement. A size whose
estimated RSS exceeds `--max-rss` (default 80 % of the memory available) is skipped, and a
run whose tree outgrows it is stopped. Results: bench/results/scale.md (`--output`).

    make bench-scale BENCH_ARGS="--models 10,20 --output bench/results/scale_baseline.md"
    make bench-scale BENCH_ARGS="--ref main"     # a commit's tree instead of the working tree
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dev_memory import MIB, Process, process_tree, role, settle

REPO = Path(__file__).resolve().parents[1]
GIB = 1024 * MIB
# The steps every generated model has; a model whose project failed to load shows only its
# error asset, so it does not count as loaded.
EXPECTED_STEPS = ("raw", "features", "split", "candidate", "evaluation", "champion")
TARGETS = {"models": 100, "loaded_s": 90.0, "rss_gib": 3.0, "daemon_cpu": 25.0}
RSS_PER_MODEL_GUESS = 360 * MIB  # one code location per model, as measured in issue 18
IGNORED = (".git", ".venv", ".modelfactory", ".dagster", "mlruns", "__pycache__", "*.duckdb")
IGNORED += (".pytest_cache", ".ruff_cache", "*.egg-info", "node_modules")


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


@dataclass
class Result:
    """One size's measurements; `skipped` or `error` says why a figure is missing."""

    models: int
    locations: int = 0
    loaded_s: float | None = None
    rss: int = 0
    pss: int = 0
    processes: int = 0
    daemon_cpu: float | None = None
    tree_cpu: float | None = None
    sensors: int = 0
    sensors_started: int = 0
    sensors_ticked: int = 0
    tick_failures: int = 0
    validate_s: float | None = None
    validate_ok: bool | None = None
    load: dict[str, str] = field(default_factory=dict)
    skipped: str = ""
    error: str = ""


# -- the copy and its projects ---------------------------------------------------------------


def make_copy(repo: Path, dest: Path, ref: str | None = None) -> Path:
    """The working tree of `repo` at `dest`, without git, virtualenvs or local state; or,
    given `ref`, that commit's tree (`git archive`), to measure a branch without checking
    it out."""
    if ref is None:
        shutil.copytree(repo, dest, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
        return dest
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=repo, capture_output=True)
    if archive.returncode != 0:
        raise BenchError(f"git archive {ref}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def remove_projects(copy: Path) -> list[str]:
    """Delete the copy's model projects and the workspace entries that load them, so the
    fleet is only the generated models; locations loading a whole folder stay."""
    folders = [p.parent for p in (copy / "model_projects").glob("**/model.yaml")]
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    workspace = copy / "workspace.yaml"
    data = yaml.safe_load(workspace.read_text()) or {}
    entries = data.get("load_from") or []
    kept = [e for e in entries if not _loads_from(copy, e, folders)]
    if len(kept) != len(entries):
        data["load_from"] = kept
        workspace.write_text(yaml.safe_dump(data, sort_keys=False))
    return sorted(f.name for f in folders)


def _loads_from(copy: Path, entry: Any, folders: Sequence[Path]) -> bool:
    """Whether a workspace entry's file lies inside one of `folders`."""
    target = next(iter(entry.values()), {}) if isinstance(entry, dict) else {}
    path = target.get("relative_path") if isinstance(target, dict) else None
    if not path:
        return False
    where = (copy / path).resolve()
    return any(where.is_relative_to(f.resolve()) for f in folders)


def model_names(count: int) -> list[str]:
    """`bench_m001` ... : sortable, valid project names."""
    return [f"bench_m{i:03d}" for i in range(1, count + 1)]


def generate(copy: Path, names: Sequence[str], env: dict[str, str]) -> float:
    """Run `modelfactory new` for each name in the copy (half of them classification, so
    both templates are in the fleet); seconds it took."""
    started = time.monotonic()
    for i, name in enumerate(names):
        task = "classification" if i % 2 else "regression"
        command = [sys.executable, "-m", "modelfactory", "new", name, "--no-input"]
        done = subprocess.run(
            [*command, "--task", task], cwd=copy, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise BenchError(f"modelfactory new {name} failed: {done.stderr.strip()[-800:]}")
    return time.monotonic() - started


def copy_env(copy: Path, tmp: Path) -> dict[str, str]:
    """The environment every process of one size runs in: the copy's code, a fresh home."""
    home, dagster_home = tmp / "modelfactory", tmp / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if (copy / "dagster.yaml").is_file():  # as `modelfactory dev` does
        shutil.copy(copy / "dagster.yaml", dagster_home / "dagster.yaml")
    pythonpath = os.pathsep.join(
        filter(None, [str(copy / "platform"), os.environ.get("PYTHONPATH")])
    )
    return {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "MODELFACTORY_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
    }


# -- GraphQL -----------------------------------------------------------------------------------

WORKSPACE = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
ASSETS = "{ assetNodes { assetKey { path } } }"
SENSORS = """query($after: Float) { repositoriesOrError { __typename
  ... on RepositoryConnection { nodes { name location { name } sensors { name
    sensorState { status ticks(afterTimestamp: $after, limit: 100) { status } } } } } } }"""
START = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename
  ... on PythonError { message } } }"""


def graphql(port: int, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """The `data` of one GraphQL request to the webserver; BenchError on errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise BenchError(f"GraphQL: {answer['errors'][0].get('message')}")
    return answer["data"]


def location_state(port: int) -> tuple[list[str], dict[str, str], bool]:
    """Location names, those in error (name: message), and whether all finished loading."""
    entries = graphql(port, WORKSPACE)["workspaceOrError"].get("locationEntries") or []
    errors = {
        e["name"]: e["locationOrLoadError"].get("message", "")
        for e in entries
        if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"
    }
    done = bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)
    return [e["name"] for e in entries], errors, done


def missing_models(port: int, names: Sequence[str]) -> list[str]:
    """The generated models that lack one of EXPECTED_STEPS among the webserver's assets."""
    keys = {tuple(n["assetKey"]["path"]) for n in graphql(port, ASSETS)["assetNodes"]}
    return [n for n in names if any((n, step) not in keys for step in EXPECTED_STEPS)]


def sensors(port: int, after: float | None = None) -> list[dict[str, Any]]:
    """Every sensor of every location, with its status and its ticks since `after`."""
    data = graphql(port, SENSORS, {"after": after})["repositoriesOrError"]
    return [
        {"location": repo["location"]["name"], "repository": repo["name"], **sensor}
        for repo in data.get("nodes", [])
        for sensor in repo["sensors"]
    ]


def start_sensors(port: int) -> tuple[int, int]:
    """Switch on every sensor that is not running; (sensors in all, sensors started)."""
    found, started = sensors(port), 0
    for sensor in found:
        if sensor["sensorState"]["status"] == "RUNNING":
            continue
        selector = {
            "repositoryLocationName": sensor["location"],
            "repositoryName": sensor["repository"],
            "sensorName": sensor["name"],
        }
        answer = graphql(port, START, {"s": selector})["startSensor"]
        if answer["__typename"] == "PythonError":
            raise BenchError(f"could not start sensor {sensor['name']}: {answer['message']}")
        started += 1
    return len(found), started


# -- processes ---------------------------------------------------------------------------------


def load_average() -> str:
    """The machine's 1/5/15-minute load average, as /proc/loadavg has it."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and of its reaped children (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds of every process in `root`'s tree, by pid."""
    return {p.pid: cpu_seconds(p.pid) for p in process_tree(root)}


def cpu_percent(before: dict[int, float], after: dict[int, float], seconds: float) -> float:
    """% of one core a tree used between two readings; a process born meanwhile counts
    from zero, one that exited and was reaped is in its parent's child times."""
    used = sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())
    return 100 * used / seconds


def find_daemon(root: int) -> int:
    """The pid of the Dagster daemon under `dagster dev`."""
    for proc in process_tree(root):
        if role(proc.command) == "Dagster daemon":
            return proc.pid
    raise BenchError("no Dagster daemon under dagster dev")


def stop(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the session `proc` leads, then SIGKILL to whatever is left of its tree
    (by pid: a code server may sit in a session of its own)."""
    tree = [p.pid for p in process_tree(proc.pid)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    for pid in [proc.pid, *tree]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


# -- one size ----------------------------------------------------------------------------------


def wait_loaded(
    port: int,
    names: Sequence[str],
    dev: subprocess.Popen,
    guard: Callable[[], None],
    timeout: float,
) -> tuple[float, list[str]]:
    """Seconds until every location is loaded and every model's steps are assets."""
    started = time.monotonic()
    waiting = "the webserver"
    while time.monotonic() - started < timeout:
        if dev.poll() is not None:
            raise BenchError(f"dagster dev exited with {dev.returncode} while loading")
        guard()
        try:
            locations, errors, done = location_state(port)
        except (OSError, BenchError, KeyError, TypeError):
            time.sleep(2)
            continue
        if errors:
            name, message = next(iter(errors.items()))
            raise BenchError(f"location {name} failed to load: {message.strip()[-600:]}")
        missing = missing_models(port, names) if done else list(names)
        if done and not missing:
            return time.monotonic() - started, locations
        waiting = f"{len(missing)} models (e.g. {missing[0]})" if missing else "locations"
        time.sleep(2)
    raise BenchError(f"not loaded after {timeout:.0f} s: waiting for {waiting}")


def rss_guard(root: int, limit: int) -> Callable[[], None]:
    """A check that raises once `root`'s tree holds more than `limit` bytes of RSS."""

    def check() -> None:
        total = sum(p.rss for p in process_tree(root))
        if total > limit:
            raise BenchError(f"stopped: RSS {total / GIB:.1f} GiB passed --max-rss")

    return check


def measure_rest(port: int, dev: subprocess.Popen, result: Result, args: argparse.Namespace):
    """Sensors on, a rest, then CPU over the window and RSS once it settles."""
    since = time.time()  # ticks are counted from here: sensors on, through the window
    result.sensors, result.sensors_started = start_sensors(port)
    time.sleep(args.rest)
    daemon = find_daemon(dev.pid)
    result.load["cpu"] = load_average()
    before, daemon_before = tree_cpu(dev.pid), tree_cpu(daemon)
    time.sleep(args.cpu_window)
    after, daemon_after = tree_cpu(dev.pid), tree_cpu(daemon)
    result.tree_cpu = cpu_percent(before, after, args.cpu_window)
    result.daemon_cpu = cpu_percent(daemon_before, daemon_after, args.cpu_window)
    ticked = sensors(port, after=since)
    result.sensors_ticked = sum(1 for s in ticked if s["sensorState"]["ticks"])
    failed = [t for s in ticked for t in s["sensorState"]["ticks"] if t["status"] == "FAILURE"]
    result.tick_failures = len(failed)
    tree: list[Process] = settle(dev.pid, interval=5, window=4, tolerance=0.02, limit=120)
    result.load["rss"] = load_average()
    result.rss, result.pss = sum(p.rss for p in tree), sum(p.pss for p in tree)
    result.processes = len(tree)


def validate(copy: Path, env: dict[str, str], cwd: Path, timeout: float) -> tuple[float, bool]:
    """Seconds `dagster definitions validate` takes on the copy's workspace, and its verdict."""
    command = [sys.executable, "-m", "dagster", "definitions", "validate"]
    started = time.monotonic()
    done = subprocess.run(
        [*command, "-w", str(copy / "workspace.yaml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=timeout,
    )
    return time.monotonic() - started, done.returncode == 0


def run_size(count: int, args: argparse.Namespace, max_rss: int) -> Result:
    """Copy, generate, start, measure and stop one fleet of `count` models."""
    result = Result(count)
    tmp = Path(tempfile.mkdtemp(prefix=f"mf-scale-{count}-"))
    try:
        copy = make_copy(REPO, tmp / "repo", args.ref)
        env = copy_env(copy, tmp)
        if not args.keep_examples:
            remove_projects(copy)
        names = model_names(count)
        print(f"[{count}] generating in {copy}", flush=True)
        generate(copy, names, env)
        _measure_dev(copy, env, names, result, args, max_rss)
        result.load["validate"] = load_average()
        result.validate_s, result.validate_ok = validate(
            copy, env, Path(env["DAGSTER_HOME"]), args.timeout
        )
    except (BenchError, subprocess.TimeoutExpired) as exc:
        result.error = str(exc)
    finally:
        if args.keep:
            print(f"[{count}] kept {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def _measure_dev(copy, env, names, result: Result, args, max_rss: int) -> None:
    """`dagster dev` on the copy: loaded, then at rest; stopped whatever happens."""
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(copy / "workspace.yaml")]
    command += ["-p", str(args.port), "-h", "127.0.0.1"]
    log = open(Path(env["DAGSTER_HOME"]) / "dev.log", "wb")  # noqa: SIM115 - open while dev runs
    result.load["start"] = load_average()
    dev = subprocess.Popen(
        command,
        cwd=env["DAGSTER_HOME"],  # as `modelfactory dev`: no warning about the repo's dagster.yaml
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        guard = rss_guard(dev.pid, max_rss)
        result.loaded_s, locations = wait_loaded(args.port, names, dev, guard, args.timeout)
        result.locations = len(locations)
        print(f"[{len(names)}] loaded in {result.loaded_s:.0f} s, {len(locations)} locations")
        measure_rest(args.port, dev, result, args)
    finally:
        stop(dev)
        log.close()


# -- the guard and the table -------------------------------------------------------------------


def estimate_rss(count: int, done: Sequence[Result]) -> int:
    """RSS a fleet of `count` would need: a line through the two largest sizes measured,
    in proportion to one of them, or today's cost of a location per model."""
    points = sorted((r.models, r.rss) for r in done if r.rss)
    if len(points) >= 2:
        (n0, r0), (n1, r1) = points[-2:]
        slope = (r1 - r0) / (n1 - n0)
        return int(r1 + slope * (count - n1))
    if points:
        n, rss = points[-1]
        return int(rss * count / n)
    return count * RSS_PER_MODEL_GUESS


def available_memory() -> int:
    """MemAvailable from /proc/meminfo, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise BenchError("no MemAvailable in /proc/meminfo")


def machine() -> str:
    """Cores, memory and CPU model of this machine, in one line."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    return f"{os.cpu_count()} cores ({cpu}), {memory / GIB:.0f} GiB, {platform.platform()}"


def commit(ref: str | None = None) -> str:
    """The short sha measured: `ref`'s, or HEAD's with `+changes` when the working tree
    differs from it."""
    if ref is not None:
        return f"{_git('rev-parse', '--short', ref) or 'unknown'} ({ref})"
    sha = _git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{sha}+changes" if _git("status", "--porcelain", "--untracked-files=no") else sha


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def row(r: Result) -> str:
    """One table row; a skipped or failed size says why in its last column."""
    if r.skipped or (r.error and r.loaded_s is None):
        return f"| {r.models} | | | | | | | | | | | {r.skipped or r.error} |"
    ok = "" if r.validate_ok in (None, True) else " (failed)"
    sensors = f"{r.sensors} ({r.sensors_started} started), {r.sensors_ticked} ticked"
    if r.tick_failures:
        sensors += f", {r.tick_failures} failed ticks"
    cells = [
        r.models,
        r.locations,
        _num(r.loaded_s, "{:.0f}"),
        f"{r.rss / GIB:.2f}",
        f"{r.pss / GIB:.2f}",
        r.processes,
        _num(r.daemon_cpu, "{:.1f}"),
        _num(r.tree_cpu, "{:.1f}"),
        sensors,
        _num(r.validate_s, "{:.0f}") + ok,
        " / ".join(f"{k} {v.split()[0]}" for k, v in r.load.items()),
        r.error,
    ]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def verdicts(results: Sequence[Result]) -> list[str]:
    """Each target of issue 18, met or not, judged at the target's size only."""
    at = next((r for r in results if r.models == TARGETS["models"] and r.loaded_s), None)
    if at is None:
        return [f"- Not judged: no measurement at {TARGETS['models']} models in this run."]
    checks = [
        ("loaded", at.loaded_s, TARGETS["loaded_s"], "s"),
        ("RSS in all", at.rss / GIB, TARGETS["rss_gib"], "GiB"),
        ("daemon at rest", at.daemon_cpu, TARGETS["daemon_cpu"], "% of a core"),
    ]
    return [
        f"- {name}: {_num(value, '{:.1f}') or 'not measured'} {unit} against ≤ {limit:g} "
        f"{unit}: **{'met' if value is not None and value <= limit else 'not met'}**"
        for name, value, limit, unit in checks
    ]


def report(results: Sequence[Result], note: str, ref: str | None = None) -> str:
    """The markdown page: the table, the targets, and how it was measured."""
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    lines = [
        "# A fleet under `dagster dev`",
        "",
        f"Measured by `bench/scale.py` (`make bench-scale`) on {when} UTC at commit "
        f"`{commit(ref)}`, on {machine()}. The machine is shared with other work: the load "
        "average (1 min) is given for each phase.",
        "",
        "| models | locations | loaded (s) | RSS (GiB) | PSS (GiB) | processes "
        "| daemon CPU (% core) | tree CPU (% core) | sensors (running; ticked at rest) "
        "| validate (s) | load avg | note |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |",
        *(row(r) for r in results),
        "",
        f"Targets of issue 18, at {TARGETS['models']} models: loaded in ≤ "
        f"{TARGETS['loaded_s']:g} s, ≤ {TARGETS['rss_gib']:g} GiB in all, daemon at rest ≤ "
        f"{TARGETS['daemon_cpu']:g} % of a core.",
        "",
        *verdicts(results),
        "",
        METHOD,
    ]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


METHOD = """How: each size is a fresh copy of the working tree (or `--ref`), projects replaced
by N from `modelfactory new` (alternately regression and classification, untrained), under
`dagster dev -w <copy>/workspace.yaml`. *loaded*: from `dagster dev`'s start until every
location is LOADED without error and each model's raw … champion assets are asset nodes
(GraphQL). *sensors*: every sensor RUNNING (started through GraphQL when not by default);
its ticks counted from then until the end of the CPU window. *CPU*: after a rest,
utime+stime over the window, of the daemon's process tree and of the whole tree (sensor
bodies run in the code servers). *RSS/PSS*: summed over the whole process tree once the
total settles. *validate*: `dagster definitions validate` on the workspace, after
`dagster dev` stopped."""


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="10,100", help="fleet sizes, comma-separated")
    parser.add_argument("--port", type=int, default=3300, help="Dagster UI port")
    parser.add_argument("--timeout", type=float, default=900, help="longest wait to load, s")
    parser.add_argument("--rest", type=float, default=60, help="seconds at rest before CPU")
    parser.add_argument("--cpu-window", type=float, default=60, help="CPU sampling, s")
    parser.add_argument("--max-rss", type=float, default=None, help="GiB [80%% of available]")
    parser.add_argument("--ref", default=None, help="measure this commit [the working tree]")
    parser.add_argument("--keep-examples", action="store_true", help="keep the repo's projects")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "scale.md"))
    parser.add_argument("--note", default="", help="a paragraph added under the table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    max_rss = int(args.max_rss * GIB) if args.max_rss else int(0.8 * available_memory())
    results: list[Result] = []
    for count in (int(n) for n in args.models.split(",")):
        estimate = estimate_rss(count, results)
        if estimate > max_rss:
            why = f"skipped: estimated {estimate / GIB:.1f} GiB > --max-rss {max_rss / GIB:.1f}"
            results.append(Result(count, skipped=why))
        else:
            results.append(run_size(count, args, max_rss))
        print(row(results[-1]), flush=True)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(report(results, args.note, args.ref))  # kept as sizes finish
    print(Path(args.output).read_text())


if __name__ == "__main__":
    main()
