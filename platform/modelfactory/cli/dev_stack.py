"""The local stack `modelfactory dev` leaves running: Dagster (UI, daemon, a code server per
model project), the MLflow UI and the endpoint, supervised by a process that imports nothing
but the standard library.

`modelfactory dev` trains in a child process, then replaces itself with this module
(`os.execv`), so the process that stays up for hours holds neither dagster, mlflow nor
scikit-learn (~450 MiB). MLflow's server runs without its job runner (eight huey consumers,
~1.8 GiB): nothing here submits MLflow jobs.

    python -m modelfactory.cli.dev_stack --port 3000 --mlflow-port 5000 --endpoint-port 8000 \\
        --workspace workspace.yaml --tracking-uri sqlite:///... --artifact-root ...

Every link the services write follows the ports: `modelfactory dev` sets the URL variables
(stores/urls.py service_url_env) before it trains and before it execs this.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["commands", "main", "stop", "supervise"]


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """The command of each service, all bound to 127.0.0.1."""
    python = sys.executable
    store = ["--backend-store-uri", args.tracking_uri]
    store += ["--default-artifact-root", args.artifact_root]
    bind = ["--host", "127.0.0.1", "--port", str(args.mlflow_port)]
    return {
        "dagster": [python, "-m", "dagster", "dev", "-w", args.workspace, "-p", str(args.port)],
        "mlflow": [python, "-m", "mlflow", "server", *store, *bind, "--workers", "1"],
        "endpoint": [python, "-m", "modelfactory", "serve", "--port", str(args.endpoint_port)],
    }


def supervise(commands: dict[str, list[str]], cwd: dict[str, str]) -> None:
    """Run the services until one exits, Ctrl-C or SIGTERM; then stop them all."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    # Each in a session of its own, so stopping one can take its whole process tree with it.
    procs = {
        name: subprocess.Popen(command, env=env, cwd=cwd[name], start_new_session=True)
        for name, command in commands.items()
    }
    # `kill` (SIGTERM) stops the services as Ctrl-C does, instead of orphaning them.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.5)
        exited = [name for name, p in procs.items() if p.poll() is not None]
        print(f"{', '.join(exited)} exited; stopping the rest", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("stopping ...", flush=True)
    finally:
        stop(procs.values())


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def stop(procs: Iterable[subprocess.Popen], grace: float = 15.0) -> None:
    """Ask each process to stop (SIGTERM: SIGINT may be ignored in a background shell), then
    kill what is left of its process tree after `grace` seconds."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modelfactory.cli.dev_stack")
    parser.add_argument("--port", type=int, required=True, help="Dagster UI port")
    parser.add_argument("--mlflow-port", type=int, required=True)
    parser.add_argument("--endpoint-port", type=int, required=True)
    parser.add_argument("--workspace", required=True, help="workspace.yaml")
    parser.add_argument("--tracking-uri", required=True, help="MLflow's backend store")
    parser.add_argument("--artifact-root", required=True)
    args = parser.parse_args(argv)
    root = str(Path(args.workspace).resolve().parent)
    # Dagster from DAGSTER_HOME, so it does not warn about the repo's dagster.yaml in its cwd.
    cwd = {"dagster": os.environ["DAGSTER_HOME"], "mlflow": root, "endpoint": root}
    supervise(commands(args), cwd)


if __name__ == "__main__":
    main()
