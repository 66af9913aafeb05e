"""Serving benchmark: our endpoint vs `mlflow models serve` vs a bare FastAPI floor.

All three serve the same registered MLflow model (demand_forecast v1, alias champion) in one
run, one server at a time, under the same wrk load:

    ours    `modelfactory serve demand_forecast`  POST /models/demand_forecast/predict {"rows"}
    mlflow  `mlflow models serve -m models:/demand_forecast/1 --env-manager local`
            POST /invocations {"dataframe_split": {"columns", "data"}}
    floor   bench/floor_app.py: FastAPI + uvicorn answering a constant JSON (the HTTP floor)

Run (from the repository root; a fresh temporary MODELFACTORY_HOME is trained first):

    make bench-serving                                   # 10 s runs, 1 and 100 rows, 8 and 32 conns
    .venv/bin/python bench/serving.py --duration 2 --warmup 1 --rows 1 --connections 8

For each payload (1 and 100 random valid rows, fixed seed, the same rows for every server in
its own format) and each connection count it verifies one request (HTTP 200, one prediction
per row), runs a discarded wrk warm-up, then `wrk -t THREADS -c CONNS -d DURATION --latency`,
and reads requests/s, rows/s, p50/p99 latency, non-2xx and socket errors, and the RSS of the
server's process tree. Cold start is spawn until the first successful prediction. The tables
go to bench/results/serving.md and stdout. Every server is killed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = (
    ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin").is_dir() else Path(sys.executable).parent
)
RESULTS = ROOT / "bench" / "results" / "serving.md"
MODEL = "demand_forecast"
VERSION = "1"
COLUMNS = ["marketplace", "price", "promo", "temperature", "is_weekend"]
SERVERS = ("ours", "mlflow", "floor")
SEED = 20240601
WRK_TIMEOUT = "10s"

Row = dict[str, Any]


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


# -- payloads ---------------------------------------------------------------------------------


def random_rows(count: int, seed: int = SEED) -> list[Row]:
    """`count` rows valid for demand_forecast's request schema, the same for a given seed."""
    rng = random.Random(seed + count)
    return [
        {
            "marketplace": rng.choice(["uk", "de", "us"]),
            "price": round(rng.uniform(1.0, 60.0), 2),
            "promo": rng.randint(0, 1),
            "temperature": round(rng.uniform(-15.0, 38.0), 1),
            "is_weekend": rng.randint(0, 1),
        }
        for _ in range(count)
    ]


def ours_body(rows: list[Row]) -> bytes:
    return json.dumps({"rows": rows}).encode()


def mlflow_body(rows: list[Row]) -> bytes:
    data = [[row[c] for c in COLUMNS] for row in rows]
    return json.dumps({"dataframe_split": {"columns": COLUMNS, "data": data}}).encode()


def ours_predictions(answer: Any) -> list[Any]:
    return [p["prediction"] for p in answer["predictions"]]


def mlflow_predictions(answer: Any) -> list[Any]:
    return list(answer["predictions"])


def floor_predictions(answer: Any) -> None:
    if answer.get("model") != MODEL:
        raise BenchError(f"floor answered {answer!r}")


# -- servers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    name: str
    command: Callable[[int], list[str]]
    path: str  # the prediction POST
    encode: Callable[[list[Row]], bytes]
    predictions: Callable[[Any], list[Any] | None]  # None: the answer has no predictions


def server_specs() -> dict[str, ServerSpec]:
    python = str(VENV_BIN / "python")
    return {
        "ours": ServerSpec(
            name="ours",
            command=lambda port: [
                str(VENV_BIN / "modelfactory"),
                "serve",
                MODEL,
                "--port",
                str(port),
            ],
            path=f"/models/{MODEL}/predict",
            encode=ours_body,
            predictions=ours_predictions,
        ),
        "mlflow": ServerSpec(
            name="mlflow",
            command=mlflow_command,
            path="/invocations",
            encode=mlflow_body,
            predictions=mlflow_predictions,
        ),
        "floor": ServerSpec(
            name="floor",
            command=lambda port: [
                python,
                str(ROOT / "bench" / "floor_app.py"),
                "--port",
                str(port),
            ],
            path=f"/models/{MODEL}/predict",
            encode=ours_body,
            predictions=floor_predictions,
        ),
    }


def mlflow_command(port: int) -> list[str]:
    model_uri = f"models:/{MODEL}/{VERSION}"
    serve = ["models", "serve", "-m", model_uri, "--env-manager", "local"]
    return [str(VENV_BIN / "mlflow"), *serve, "-p", str(port), "--host", "127.0.0.1"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(spec: ServerSpec, env: dict[str, str], logs: Path) -> Iterator[tuple[Any, str]]:
    """Spawn the server in its own process group; kill the whole group on the way out."""
    port = free_port()
    log = (logs / f"{spec.name}.log").open("wb")
    proc = subprocess.Popen(
        spec.command(port),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc)
        log.close()


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(proc.pid):
            proc.poll()
            time.sleep(0.1)
    proc.poll()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(pid_in_group(pid, pgid) for pid in all_pids())


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def pid_in_group(pid: int, pgid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z" and int(fields[2]) == pgid


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that still run."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        fields = stat_fields(pid)
        if fields is not None and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def process_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [Path(a.decode()).name for a in argv[:3] if a]
    return " ".join(w for w in words if w != "python") or "?"


def tree_rss(root: int) -> list[tuple[str, int]]:
    """(name, RSS KiB) of each process in the tree rooted at `root`."""
    return [(process_name(pid), rss_kib(pid)) for pid in process_tree(root)]


# -- requests ---------------------------------------------------------------------------------


def post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def verify(spec: ServerSpec, url: str, body: bytes, rows: int) -> list[Any] | None:
    """One request: HTTP 200 and one number per row (floor: its constant). Raises otherwise."""
    status, answer = post(url + spec.path, body)
    if status != 200:
        raise BenchError(f"{spec.name}: HTTP {status}: {answer[:300]!r}")
    try:
        predictions = spec.predictions(json.loads(answer))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BenchError(f"{spec.name}: unexpected answer {answer[:300]!r}") from exc
    if predictions is None:
        return None
    if len(predictions) != rows or not all(isinstance(p, float | int) for p in predictions):
        raise BenchError(f"{spec.name}: expected {rows} numbers, got {answer[:300]!r}")
    return predictions


def cold_start(spec: ServerSpec, proc: subprocess.Popen[bytes], url: str, spawned: float) -> float:
    """Seconds from spawn until the first successful 1-row prediction (polled every 50 ms)."""
    body = spec.encode(random_rows(1))
    while time.monotonic() - spawned < 300:
        if proc.poll() is not None:
            raise BenchError(f"{spec.name} exited with {proc.returncode} before answering")
        try:
            verify(spec, url, body, 1)
            return time.monotonic() - spawned
        except (OSError, BenchError):
            time.sleep(0.05)
    raise BenchError(f"{spec.name} gave no successful prediction within 300 s")


# -- wrk --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkSettings:
    threads: int
    duration: int
    warmup: int

    def args(self, connections: int, duration: int) -> list[str]:
        return [
            "wrk",
            "-t",
            str(self.threads),
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--timeout",
            WRK_TIMEOUT,
            "--latency",
        ]


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def lua_script(body_file: Path, script_file: Path) -> Path:
    """A wrk script POSTing the JSON in `body_file` (read from the file: no Lua quoting)."""
    script_file.write_text(
        f"local f = assert(io.open({json.dumps(str(body_file))}, 'rb'))\n"
        "wrk.method = 'POST'\n"
        "wrk.body = f:read('*a')\n"
        "f:close()\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
    )
    return script_file


def run_wrk(settings: WrkSettings, url: str, script: Path, connections: int, duration: int) -> str:
    command = [*settings.args(connections, duration), "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return done.stdout


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def percentile_ms(output: str, percent: int) -> float:
    match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    if not match:
        raise BenchError(f"no {percent}% latency in wrk output:\n{output}")
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if not rps or not total:
        raise BenchError(f"cannot read wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests=int(total.group(1)),
        rps=float(rps.group(1)),
        p50_ms=percentile_ms(output, 50),
        p99_ms=percentile_ms(output, 99),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


# -- one server -------------------------------------------------------------------------------


@dataclass
class Measurement:
    server: str
    rows: int
    connections: int
    result: WrkResult | None = None
    rss_kib: int = 0
    problem: str | None = None  # verification or wrk failure

    @property
    def flagged(self) -> bool:
        return self.problem is not None or (self.result is not None and self.result.errors > 0)


@dataclass
class ServerReport:
    name: str
    cold_start_s: float | None = None
    rss: list[tuple[str, int]] = field(default_factory=list)  # per process, after the last load
    measurements: list[Measurement] = field(default_factory=list)
    predictions: dict[int, list[Any]] = field(default_factory=dict)  # rows -> first answer
    problem: str | None = None


@dataclass(frozen=True)
class Plan:
    rows: list[int]
    connections: list[int]
    wrk: WrkSettings
    workdir: Path


@dataclass(frozen=True)
class Target:
    """A server that runs: what it is, where it answers, its process."""

    spec: ServerSpec
    url: str  # scheme, host and port
    pid: int

    @property
    def predict_url(self) -> str:
        return self.url + self.spec.path


def bench_server(spec: ServerSpec, plan: Plan, env: dict[str, str]) -> ServerReport:
    report = ServerReport(spec.name)
    files = {n: write_body(spec, n, plan.workdir) for n in plan.rows}
    log(f"{spec.name}: starting")
    spawned = time.monotonic()
    with running(spec, env, plan.workdir) as (proc, url):
        try:
            report.cold_start_s = cold_start(spec, proc, url, spawned)
        except BenchError as exc:
            report.problem = f"{exc}; log: {tail(plan.workdir / f'{spec.name}.log')}"
            return report
        log(f"{spec.name}: first prediction after {report.cold_start_s:.2f} s")
        target = Target(spec, url, proc.pid)
        for rows in plan.rows:
            for connections in plan.connections:
                report.measurements.append(
                    measure(target, files[rows], rows, connections, plan.wrk, report)
                )
        report.rss = tree_rss(proc.pid)
    return report


def write_body(spec: ServerSpec, rows: int, workdir: Path) -> tuple[Path, Path]:
    """The request body of `rows` rows in the server's format, and the wrk script sending it."""
    body = workdir / f"{spec.name}-{rows}.json"
    body.write_bytes(spec.encode(random_rows(rows)))
    return body, lua_script(body, workdir / f"{spec.name}-{rows}.lua")


def measure(
    target: Target,
    files: tuple[Path, Path],
    rows: int,
    connections: int,
    wrk: WrkSettings,
    report: ServerReport,
) -> Measurement:
    """Verify one request, warm up, run wrk, then read the RSS of the server's process tree."""
    body, script = files
    measurement = Measurement(target.spec.name, rows, connections)
    try:
        predictions = verify(target.spec, target.url, body.read_bytes(), rows)
        if predictions is not None:
            report.predictions.setdefault(rows, predictions)
        if wrk.warmup > 0:
            run_wrk(wrk, target.predict_url, script, connections, wrk.warmup)
        output = run_wrk(wrk, target.predict_url, script, connections, wrk.duration)
        measurement.result = parse_wrk(output)
    except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
        measurement.problem = str(exc)
    measurement.rss_kib = sum(kib for _, kib in tree_rss(target.pid))
    log(f"{target.spec.name}: {plural(rows)} x {connections} conns: {describe(measurement)}")
    return measurement


def describe(m: Measurement) -> str:
    if m.result is None:
        return f"FAILED: {m.problem}"
    r = m.result
    return f"{r.rps:.0f} req/s p50 {r.p50_ms:.2f} ms p99 {r.p99_ms:.2f} ms errors {r.errors}"


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- setup ------------------------------------------------------------------------------------


def bench_env(home: Path) -> dict[str, str]:
    """A fresh MODELFACTORY_HOME; the venv's bin first on PATH (mlflow serve execs `uvicorn`)."""
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "MODELFACTORY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }


def train(env: dict[str, str]) -> float:
    """Seed and train demand_forecast; it must become version 1 with alias champion."""
    log("training demand_forecast in a fresh MODELFACTORY_HOME ...")
    started = time.monotonic()
    done = subprocess.run(
        [str(VENV_BIN / "modelfactory"), "train", MODEL],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise BenchError(f"training failed:\n{done.stdout}\n{done.stderr}")
    if f"champion v{VERSION} " not in done.stdout:
        raise BenchError(f"training did not make v{VERSION} champion:\n{done.stdout}")
    return time.monotonic() - started


# -- report -----------------------------------------------------------------------------------


def versions() -> str:
    names = ("mlflow", "fastapi", "uvicorn", "scikit-learn")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def header(plan: Plan, specs: dict[str, ServerSpec]) -> list[str]:
    sizes = {
        name: ", ".join(f"{plural(n)} {len(spec.encode(random_rows(n)))} B" for n in plan.rows)
        for name, spec in specs.items()
    }
    w = plan.wrk
    return [
        "# Serving benchmark: our endpoint vs mlflow models serve vs a bare FastAPI floor",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        f"- machine: nproc={os.cpu_count()}, {platform.platform()}, "
        f"Python {platform.python_version()}; {versions()}",
        f"- model: {MODEL} v{VERSION} (alias champion), trained in a fresh MODELFACTORY_HOME; "
        f"rows random and valid (seed {SEED}), the same rows for every server",
        f"- load: `wrk -t {w.threads} -c CONNS -d {w.duration}s --timeout {WRK_TIMEOUT} "
        f"--latency` after a {w.warmup} s warm-up run (discarded); wrk shares the machine "
        "with the server; servers run one at a time",
        "- servers: ours = `modelfactory serve` (one uvicorn process); mlflow = "
        "`mlflow models serve --env-manager local` (CLI process + `uvicorn --workers 1` child, "
        "access log on, as shipped); floor = `bench/floor_app.py` "
        "(constant JSON, uvicorn like ours)",
        *(f"- body {name}: {size}" for name, size in sizes.items()),
        "- RSS: VmRSS summed over the server's process tree, after the run; "
        "**errors** = non-2xx responses + wrk socket errors (a flagged row is not to be trusted)",
    ]


def plural(rows: int) -> str:
    return f"{rows} row" if rows == 1 else f"{rows} rows"


def ms(value: float) -> str:
    return f"{value:.2f}"


def measurement_row(m: Measurement) -> str:
    name = f"{m.server} **(errors)**" if m.flagged else m.server
    if m.result is None:
        return f"| {name} | - | - | - | - | failed: {m.problem} | {m.rss_kib / 1024:.0f} |"
    r = m.result
    errors = f"{r.non_2xx} non-2xx, {r.socket_errors} socket" if r.errors else "0"
    return (
        f"| {name} | {r.rps:,.0f} | {r.rps * m.rows:,.0f} | {ms(r.p50_ms)} | {ms(r.p99_ms)} "
        f"| {errors} | {m.rss_kib / 1024:.0f} |"
    )


def measurement_tables(plan: Plan, reports: Sequence[ServerReport]) -> list[str]:
    lines = []
    for rows in plan.rows:
        for connections in plan.connections:
            lines += [
                "",
                f"### {plural(rows)} a request, {connections} connections",
                "",
                "| server | req/s | rows/s | p50 ms | p99 ms | errors | RSS MiB |",
                "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
            ]
            lines += [measurement_row(m) for m in find(reports, rows, connections)]
    return lines


def find(reports: Sequence[ServerReport], rows: int, connections: int) -> list[Measurement]:
    return [
        m for r in reports for m in r.measurements if (m.rows, m.connections) == (rows, connections)
    ]


def ratio(top: float | None, bottom: float | None, flagged: bool) -> str:
    if top is None or bottom is None or bottom == 0:
        return "-"
    return f"{top / bottom:.2f}{' *' if flagged else ''}"


def ratio_table(plan: Plan, reports: Sequence[ServerReport]) -> list[str]:
    lines = [
        "",
        "## Ratios (* = a server in the pair had errors)",
        "",
        "| rows | conns | ours/mlflow req/s | mlflow p99 / ours p99 | ours/floor req/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for rows in plan.rows:
        for connections in plan.connections:
            by = {m.server: m for m in find(reports, rows, connections)}
            ours, mlf, floor = by.get("ours"), by.get("mlflow"), by.get("floor")
            lines.append(
                f"| {rows} | {connections} "
                f"| {ratio(rps(ours), rps(mlf), flagged(ours, mlf))} "
                f"| {ratio(p99(mlf), p99(ours), flagged(ours, mlf))} "
                f"| {ratio(rps(ours), rps(floor), flagged(ours, floor))} |"
            )
    return lines


def rps(m: Measurement | None) -> float | None:
    return m.result.rps if m and m.result else None


def p99(m: Measurement | None) -> float | None:
    return m.result.p99_ms if m and m.result else None


def flagged(*ms_: Measurement | None) -> bool:
    return any(m is None or m.flagged for m in ms_)


def server_table(reports: Sequence[ServerReport]) -> list[str]:
    lines = [
        "",
        "## Servers",
        "",
        "| server | cold start s | processes | RSS MiB after load (per process) |",
        "| --- | ---: | ---: | --- |",
    ]
    for r in reports:
        cold = f"{r.cold_start_s:.2f}" if r.cold_start_s is not None else "failed"
        per = ", ".join(f"{name}: {kib / 1024:.0f}" for name, kib in r.rss)
        total = sum(kib for _, kib in r.rss) / 1024
        lines.append(f"| {r.name} | {cold} | {len(r.rss)} | {total:.0f} ({per}) |")
    lines += [f"\n**{r.name} failed**: {r.problem}" for r in reports if r.problem]
    return lines


def agreement(reports: Sequence[ServerReport]) -> list[str]:
    """Ours and mlflow serve the same model: their predictions for the same rows must agree."""
    by = {r.name: r.predictions for r in reports}
    if "ours" not in by or "mlflow" not in by:
        return []
    lines = []
    for rows in sorted(set(by["ours"]) & set(by["mlflow"])):
        diff = max(abs(a - b) for a, b in zip(by["ours"][rows], by["mlflow"][rows], strict=True))
        lines.append(f"- same model check, {plural(rows)}: max |ours - mlflow| = {diff:.3g}")
    return ["", *lines] if lines else []


def render(plan: Plan, specs: dict[str, ServerSpec], reports: Sequence[ServerReport]) -> str:
    lines = header(plan, specs)
    lines += measurement_tables(plan, reports)
    lines += ratio_table(plan, reports)
    lines += server_table(reports)
    lines += agreement(reports)
    return "\n".join(lines) + "\n"


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of the discarded warm-up")
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100], help="rows a request")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary home")
    return parser.parse_args(argv)


def terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which kill the servers


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    signal.signal(signal.SIGTERM, terminate)
    workdir = Path(tempfile.mkdtemp(prefix="mf-bench-serving-"))
    plan = Plan(
        args.rows, args.connections, WrkSettings(args.threads, args.duration, args.warmup), workdir
    )
    specs = {name: spec for name, spec in server_specs().items() if name in args.servers}
    try:
        env = bench_env(workdir / "home")
        log(f"trained in {train(env):.1f} s; home {workdir / 'home'}")
        reports = [bench_server(spec, plan, env) for spec in specs.values()]
    except BenchError as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        if args.keep_home:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = render(plan, specs, reports)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    log(f"wrote {args.output}")
    failed = any(r.problem or any(m.flagged for m in r.measurements) for r in reports)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
