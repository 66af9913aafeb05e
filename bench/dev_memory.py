"""Memory of `modelfactory dev` at rest: RSS summed over its whole process tree.

Starts `modelfactory dev` (it trains the examples first, in a fresh MODELFACTORY_HOME),
waits until the Dagster UI has loaded every code location, the MLflow UI answers and the
endpoint is ready, then samples the tree until its total RSS settles, and writes a table of
every process (RSS and PSS, read from /proc) to bench/results/dev_memory.md.

RSS counts a page shared by several processes once per process (what `ps` and most
dashboards add up); PSS divides it among them, so the PSS total is what the tree really
costs the machine.

    python bench/dev_memory.py [--port 3150 --mlflow-port 5150 --endpoint-port 8150]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    rss: int  # bytes
    pss: int  # bytes
    command: str


def read_process(pid: int) -> Process | None:
    """One process from /proc, or None if it exited meanwhile."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        status = Path(f"/proc/{pid}/status").read_text()
        rss = _kib(status, "VmRSS:")
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        pss = _kib(rollup, "Pss:")
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return Process(pid, ppid, rss, pss, " ".join(a.decode() for a in argv if a))


def _kib(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0  # a kernel thread or a zombie has no such line


def process_tree(root: int) -> list[Process]:
    """`root` and every process descended from it (by parent pid, sessions notwithstanding)."""
    processes = [p for pid in _pids() if (p := read_process(pid)) is not None]
    children: dict[int, list[Process]] = {}
    for proc in processes:
        children.setdefault(proc.ppid, []).append(proc)
    tree = [p for p in processes if p.pid == root]
    for proc in tree:  # grows while it is walked: breadth first
        tree.extend(children.get(proc.pid, []))
    return tree


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def role(command: str) -> str:
    """What a process is, in a few words, from its command line."""
    known = [
        ("modelfactory dev", "modelfactory dev (supervisor)"),
        ("modelfactory.cli.dev_stack", "modelfactory dev (supervisor)"),
        ("modelfactory train", "modelfactory train (exits after training)"),
        ("modelfactory serve", "endpoint (uvicorn)"),
        ("dagster dev", "dagster dev (supervisor)"),
        ("dagster-webserver", "Dagster webserver"),
        ("dagster_webserver", "Dagster webserver"),
        ("dagster-daemon", "Dagster daemon"),
        ("dagster._daemon", "Dagster daemon"),
        ("mlflow.server.jobs", "MLflow job runner"),
        ("api grpc", "Dagster code server"),
        ("code-server start", "Dagster code server (proxy)"),
        ("huey_consumer", "MLflow job runner (huey)"),
        ("mlflow server", "MLflow server (supervisor)"),
        ("mlflow.server", "MLflow UI (uvicorn)"),
        ("uvicorn", "MLflow UI (uvicorn)"),
    ]
    for needle, name in known:
        if needle in command:
            if "api grpc" in needle or "code-server" in needle:
                location = _arg_after(command, "--location-name") or _arg_after(command, "-f")
                return f"{name}: {location}" if location else name
            return name
    return " ".join(command.split())[:60]


def _arg_after(command: str, flag: str) -> str | None:
    words = command.split()
    if flag in words and words.index(flag) + 1 < len(words):
        return words[words.index(flag) + 1]
    return None


def wait_until_up(ports: dict[str, int], dev: subprocess.Popen, timeout: float) -> float:
    """Seconds until every UI answers and the Dagster webserver has loaded every location."""
    started = time.monotonic()
    checks = {
        "mlflow": lambda: _get(f"http://127.0.0.1:{ports['mlflow']}/health"),
        "endpoint": lambda: _get(f"http://127.0.0.1:{ports['endpoint']}/ready"),
        "dagster": lambda: _locations_loaded(ports["dagster"]),
    }
    waiting = set(checks)
    while waiting:
        if dev.poll() is not None:
            raise SystemExit(f"modelfactory dev exited with {dev.returncode} before it was up")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"not up after {timeout:.0f} s: {sorted(waiting)}")
        waiting = {name for name in waiting if not checks[name]()}
        time.sleep(1)
    return time.monotonic() - started


def _get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _locations_loaded(port: int) -> bool:
    query = b'{"query": "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename } } } } }"}'  # noqa: E501
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=query,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
    except (OSError, KeyError, TypeError, ValueError):
        return False
    loaded = [e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries]
    return bool(entries) and all(loaded)


def settle(root: int, *, interval: float, window: int, tolerance: float, limit: float) -> list:
    """Sample the tree until `window` samples in a row are within `tolerance` of each other."""
    deadline = time.monotonic() + limit
    totals: list[int] = []
    while True:
        tree = process_tree(root)
        totals.append(sum(p.rss for p in tree))
        recent = totals[-window:]
        steady = len(recent) == window and (max(recent) - min(recent)) <= tolerance * max(recent)
        if steady or time.monotonic() > deadline:
            return tree
        time.sleep(interval)


def report(tree: list[Process], *, up_seconds: float, rest: float, home: str, note: str) -> str:
    rows = sorted(tree, key=lambda p: -p.rss)
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    locations: dict[str, int] = {}
    for proc in rows:
        name = role(proc.command)
        if name.startswith("Dagster code server") and ": " in name:
            where = name.split(": ", 1)[1]
            locations[where] = locations.get(where, 0) + proc.rss
    per_location = ", ".join(f"{n} {rss / MIB:,.0f} MiB" for n, rss in sorted(locations.items()))
    lines = [
        "# `modelfactory dev` at rest",
        "",
        f"Measured by `bench/dev_memory.py` on {when} UTC (`make bench-dev-memory`), with",
        f"{len(locations)} model projects and a fresh home ({home}); up (trained and every UI",
        f"answering) after {up_seconds:.0f} s, left alone {rest:.0f} s, then sampled until",
        "the total settled.",
        "",
        f"**{len(rows)} processes, RSS {sum(p.rss for p in rows) / MIB:,.0f} MiB in all, "
        f"PSS {sum(p.pss for p in rows) / MIB:,.0f} MiB** (RSS counts shared pages once per "
        "process; PSS shares them out).",
        "",
        "| pid | process | RSS MiB | PSS MiB |",
        "| ---: | --- | ---: | ---: |",
    ]
    for p in rows:
        lines.append(f"| {p.pid} | {role(p.command)} | {p.rss / MIB:,.0f} | {p.pss / MIB:,.0f} |")
    lines += [
        "",
        f"Each code location (one per model project: its code server and the proxy `dagster dev`"
        f" keeps in front of it, RSS): {per_location}.",
    ]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3150, help="Dagster UI port")
    parser.add_argument("--mlflow-port", type=int, default=5150)
    parser.add_argument("--endpoint-port", type=int, default=8150)
    parser.add_argument("--home", default=None, help="MODELFACTORY_HOME [a fresh temporary one]")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for start-up")
    parser.add_argument(
        "--rest", type=float, default=120, help="seconds after start-up before sampling"
    )  # sensors tick every 30 s: their first evaluations load what they use
    parser.add_argument("--settle", type=float, default=180, help="longest wait for rest, s")
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "dev_memory.md"))
    parser.add_argument("--note", default="", help="a line added under the table")
    args = parser.parse_args()

    home = args.home or tempfile.mkdtemp(prefix="mf-dev-memory-")
    Path(home).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MODELFACTORY_HOME": home, "DAGSTER_HOME": f"{home}/dagster"}
    command = [sys.executable, "-m", "modelfactory", "dev", "--port", str(args.port)]
    command += ["--mlflow-port", str(args.mlflow_port), "--endpoint-port", str(args.endpoint_port)]
    ports = {"dagster": args.port, "mlflow": args.mlflow_port, "endpoint": args.endpoint_port}
    log = open(Path(home) / "dev.log", "wb")  # noqa: SIM115 - open while dev runs
    dev = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        up = wait_until_up(ports, dev, args.timeout)
        print(f"up after {up:.0f} s; resting {args.rest:.0f} s, then until it settles", flush=True)
        time.sleep(args.rest)
        tree = settle(dev.pid, interval=5, window=4, tolerance=0.02, limit=args.settle)
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dev.kill()
        log.close()
    text = report(tree, up_seconds=up, rest=args.rest, home=home, note=args.note)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
