"""Shared fixtures: every test gets its own MODELFACTORY_HOME, and copies of model projects.

Nothing is mocked: runs go to a real Dagster instance, models to a real MLflow registry on
sqlite and DataFrames to a real DuckDB file, all inside the test's temporary home.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "model_projects"


@pytest.fixture(autouse=True)
def mf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated MODELFACTORY_HOME (and DAGSTER_HOME inside it) for each test."""
    home = tmp_path / "mfhome"
    monkeypatch.setenv("MODELFACTORY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir(parents=True)
    return home


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch repository (workspace.yaml + model_projects/) that is the working directory."""
    root = tmp_path / "repo"
    (root / "model_projects").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", root / "dagster.yaml")
    (root / "workspace.yaml").write_text("load_from: []\n")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def copy_example(workdir: Path) -> Callable[..., Path]:
    """Copy an example project into the scratch repo, optionally renamed and edited.

    `edit` receives the parsed model.yaml as a dict and changes it in place.
    """

    def copy(
        example: str, name: str | None = None, edit: Callable[[dict], None] | None = None
    ) -> Path:
        name = name or example
        target = workdir / "model_projects" / name
        shutil.copytree(
            EXAMPLES / example, target, ignore=shutil.ignore_patterns("tests", "__pycache__")
        )
        spec = yaml.safe_load((target / "model.yaml").read_text())
        spec["name"] = name
        if edit:
            edit(spec)
        (target / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        return target

    return copy


def edit_spec(project: Path, edit: Callable[[dict], None]) -> None:
    """Change a copied project's model.yaml, as a data scientist would between runs."""
    spec = yaml.safe_load((project / "model.yaml").read_text())
    edit(spec)
    (project / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn server on 127.0.0.1 in a background thread, for one app."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.app = app

    def __enter__(self) -> LiveServer:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the endpoint did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
