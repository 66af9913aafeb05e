"""A fleet under a real `dagster dev`, asked through the webserver's GraphQL (the UI's own API).

One broken project among good ones: the UI shows the broken model's error on its asset (file,
field, message), a good model materializes, and two runs of one model launched from an asset
selection (no job tags, as the UI launches them) run one after the other: the model's pool
queues the second.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import wait_for
from modelfactory.project.loader import import_project, load_project

REPO = Path(__file__).resolve().parents[1]
PORT = 3211  # fleet's range, 3210-3219
GOOD, BROKEN = "penguins", "broken"
RUN_STEPS = {"raw": "raw_schema", "features": "features_schema"}  # step -> its check

ASSET_QUERY = """
query {
  assetNodes {
    assetKey { path }
    groupName
    description
    metadataEntries { label ... on TextMetadataEntry { text } }
  }
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""
RUN_STATUS = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }
"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`dagster dev` on a scratch repository: penguins, breast_cancer and a broken project."""
    repo = tmp_path_factory.mktemp("fleet-ui")
    projects = repo / "model_projects"
    for name in (GOOD, "breast_cancer"):
        shutil.copytree(REPO / "model_projects" / name, projects / name,
                        ignore=shutil.ignore_patterns("tests", "__py*"))  # fmt: skip
    shutil.copytree(REPO / "model_projects" / "diabetes", projects / BROKEN,
                    ignore=shutil.ignore_patterns("tests", "__py*"))  # fmt: skip
    spec = projects / BROKEN / "model.yaml"
    spec.write_text(
        spec.read_text()
        .replace("name: diabetes", f"name: {BROKEN}")
        .replace("direction: minimize", "direction: up")
    )
    shutil.copy(REPO / "model_projects" / "definitions.py", projects / "definitions.py")
    shutil.copy(REPO / "model_projects" / "defs.yaml", projects / "defs.yaml")  # its component
    shutil.copy(REPO / "workspace.yaml", repo / "workspace.yaml")
    home = repo / ".modelfactory"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")  # pools, limits
    env = {**os.environ, "MODELFACTORY_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    log = repo / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml",
             "-h", "127.0.0.1", "-p", str(PORT)],
            cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{PORT}/graphql"
    try:
        wait_for(lambda: _loaded(url, proc, log), "the location to load", timeout=300)
        yield url, repo
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _loaded(url: str, proc: subprocess.Popen, log: Path) -> bool:
    assert proc.poll() is None, f"dagster dev exited:\n{log.read_text()[-3000:]}"
    try:
        data = graphql(url, ASSET_QUERY)
    except (httpx.HTTPError, AssertionError):
        return False
    entries = data["workspaceOrError"].get("locationEntries") or []
    return any(e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)


def graphql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    answer = httpx.post(url, json={"query": query, "variables": variables}, timeout=30).json()
    assert not answer.get("errors"), answer["errors"]
    return answer["data"]


@pytest.mark.slow
def test_the_ui_shows_the_broken_models_error_on_its_asset(ui: tuple[str, Path]) -> None:
    url, repo = ui
    data = graphql(url, ASSET_QUERY)
    [location] = data["workspaceOrError"]["locationEntries"]
    assert location["name"] == "model_projects"
    assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation"
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert {f"{GOOD}/candidate", "breast_cancer/candidate"} <= set(nodes)
    assert [key for key in nodes if key.startswith(f"{BROKEN}/")] == [f"{BROKEN}/project"]

    error = nodes[f"{BROKEN}/project"]
    metadata = {e["label"]: e.get("text") for e in error["metadataEntries"]}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)  # paths in messages are shown from where the location runs
        with pytest.raises(Exception) as failed:
            import_project(load_project(repo / "model_projects" / BROKEN))
    assert metadata["message"] == str(failed.value)
    assert metadata["file"] == f"model_projects/{BROKEN}/model.yaml"
    assert metadata["field"] == "metric.direction"
    assert "got 'up'" in metadata["message"]
    assert str(failed.value) in error["description"]
    assert error["groupName"] == BROKEN


@pytest.mark.slow
def test_a_good_model_materializes_and_its_runs_queue_behind_each_other(
    ui: tuple[str, Path],
) -> None:
    url, _ = ui
    params = {
        "selector": {
            "repositoryLocationName": "model_projects",
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": [GOOD, step]} for step in RUN_STEPS],
            "assetCheckSelection": [
                {"assetKey": {"path": [GOOD, step]}, "name": check}
                for step, check in RUN_STEPS.items()
            ],
        },
        "mode": "default",
        "runConfigData": {},
        "executionMetadata": {"tags": []},  # as the UI's Materialize button: no job tags
    }

    def launch() -> str:
        launched = graphql(url, LAUNCH, params=params)["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def follow(runs: list[str]) -> list[list[str]]:
        """Every status the runs go through until they end; never two in progress at once."""
        seen: list[list[str]] = []
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            now = [graphql(url, RUN_STATUS, id=run)["runOrError"]["status"] for run in runs]
            seen.append(now)
            assert sum(s in {"STARTING", "STARTED"} for s in now) <= 1, seen
            if all(s in {"SUCCESS", "FAILURE", "CANCELED"} for s in now):
                return seen
            time.sleep(0.5)
        raise AssertionError(f"runs did not end: {seen[-1]}")

    # The first run of a model creates its pool's limit (Dagster sets a pool to the default
    # limit when it first sees it queued, and counts it from its next pass on).
    assert follow([launch()])[-1] == ["SUCCESS"]  # a good model materializes
    seen = follow([launch(), launch()])
    assert seen[-1] == ["SUCCESS", "SUCCESS"], seen[-1]
    # the second waited in the queue while the first was in progress
    assert any(s[0] in {"STARTING", "STARTED"} and s[1] == "QUEUED" for s in seen), seen
