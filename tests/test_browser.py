"""The UIs as a person sees them: Debian's chromium, driven by playwright, on 127.0.0.1 only.

- The endpoint's /docs (Swagger UI) and /redoc render with no network: every script, style
  and font comes from the endpoint itself, and a request sent from /docs is answered.
- After a real `modelfactory dev` (it trains the examples first), Materialize all on each
  model's asset group in the Dagster UI ends in runs that succeed, and every link the first
  training wrote points at the ports dev was started on.

`make browser` installs chromium (apt, as root) and playwright. Without chromium these tests
skip and say so; under CI=true they fail instead, as a skipped check there could never fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import REPO, LiveServer, free_port, train_with
from modelfactory.project.loader import load_project
from modelfactory.serving import create_app
from modelfactory.serving.app import ServingSettings
from modelfactory.stores.home import audit_log, local_home, model_registry, rollout_store
from modelfactory.stores.notify import read_alerts
from modelfactory.stores.urls import SERVICE_URLS

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("MODELFACTORY_CHROMIUM", "/usr/bin/chromium")
# Nothing a headless test needs: no sandbox (root in a container), and none of the browser's
# own calls home (updates, sync, field trials).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
MODEL = "demand_forecast"
ROW = {"marketplace": "uk", "price": 9.5, "promo": 1, "temperature": 20.0, "is_weekend": 0}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the browser tests)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if shutil.which(CHROMIUM) is None:
        _unavailable(f"no chromium at {CHROMIUM}: `make browser` installs it (as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: `make browser` installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Offline:
    """A browser context that may only reach 127.0.0.1: anything else is aborted and kept."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context()
        self.refused: list[str] = []
        self.context.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in ("127.0.0.1", "localhost") or url.startswith("data:"):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()

    def __enter__(self) -> Offline:
        return self

    def __exit__(self, *exc_info) -> None:
        self.context.close()


@pytest.fixture
def endpoint(copy_example) -> Iterator[str]:
    root = copy_example(MODEL, segments=False)
    train_with(root, alpha=1.0)
    app = create_app(
        [load_project(root)],
        registry=model_registry(),
        rollouts=rollout_store(),
        home=local_home(),
        settings=ServingSettings(refresh_seconds=0.1, flush_seconds=0.2),
    )
    with LiveServer(app) as server:
        httpx.get(f"{server.url}/ready", timeout=10).raise_for_status()
        yield server.url


def test_the_docs_render_offline_and_send_a_prediction(browser, endpoint: str) -> None:
    with Offline(browser) as offline:
        page = offline.context.new_page()
        page.goto(f"{endpoint}/docs")
        operation = page.locator(".opblock-post", has_text=f"/models/{MODEL}/predict")
        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Try it out").click()
        operation.locator("textarea.body-param__text").fill(json.dumps({"rows": [ROW]}))
        operation.get_by_role("button", name="Execute").click()
        status = operation.locator(".live-responses-table .response .response-col_status")
        status.first.wait_for()
        answer = operation.locator(".live-responses-table .response-col_description pre")
        assert status.first.inner_text().strip() == "200", answer.first.inner_text()
        assert f'"model": "{MODEL}"' in answer.first.inner_text()

        page.goto(f"{endpoint}/redoc")
        page.get_by_text(f"/models/{MODEL}/predict").first.wait_for()
        assert page.locator("h2", has_text=f"Predict with {MODEL}").count() == 1

        assert offline.refused == []  # every script, style and font came from the endpoint


# -- the acceptance test: a fresh `modelfactory dev`, then Materialize all in the Dagster UI --


@dataclass
class Dev:
    """A running `modelfactory dev`: its ports (by service), home, log and process id."""

    ports: dict[str, int]
    home: Path
    log: Path
    pid: int

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def graphql(self, query: str, **variables: Any) -> dict:
        answer = httpx.post(
            f"{self.url('dagster')}/graphql",
            json={"query": query, "variables": variables},
            timeout=30,
        )
        answer.raise_for_status()
        body = answer.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """One real `modelfactory dev` for the module, as `make dev` starts it, on free ports."""
    home = tmp_path_factory.mktemp("dev-home")
    ports = {service: free_port() for service in SERVICE_URLS}
    env = {k: v for k, v in os.environ.items() if k not in {v for v, _ in SERVICE_URLS.values()}}
    env.update(MODELFACTORY_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    command = [sys.executable, "-m", "modelfactory", "dev", "--port", str(ports["dagster"])]
    command += ["--mlflow-port", str(ports["mlflow"]), "--endpoint-port", str(ports["endpoint"])]
    log = home / "dev.log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    running = Dev(ports, home, log, proc.pid)
    try:
        _wait_until_up(running, proc, timeout=600)
        print(
            f"modelfactory dev up (trained, every UI answering) in {time.monotonic() - started:.0f} s"
        )
        yield running
    finally:
        proc.terminate()  # dev stops its services on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_until_up(dev: Dev, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = {"mlflow": "/health", "endpoint": "/ready", "dagster": "/server_info"}
    while waiting:
        assert proc.poll() is None, f"modelfactory dev exited:\n{dev.log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, (
            f"not up: {sorted(waiting)}\n{dev.log.read_text()[-3000:]}"
        )
        for service, path in list(waiting.items()):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(dev.url(service) + path, timeout=2).status_code == 200:
                    del waiting[service]
        time.sleep(1)
    while not all(_locations(dev).values()):  # the UI lists every model's group once loaded
        assert time.monotonic() < deadline, f"code locations not loaded: {_locations(dev)}"
        time.sleep(1)


def _locations(dev: Dev) -> dict[str, bool]:
    data = dev.graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name"
        " locationOrLoadError { __typename } } } } }"
    )
    return {
        entry["name"]: entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        for entry in data["workspaceOrError"]["locationEntries"]
    }


def test_dev_keeps_nothing_resident_it_does_not_use(dev: Dev) -> None:
    """The supervisor holds no dagster, mlflow or scikit-learn; MLflow runs no job runner;
    the training dev ran first has exited."""
    tree = _process_tree(dev.pid)
    supervisor = tree[dev.pid]
    assert "modelfactory.cli.dev_stack" in supervisor["command"]
    assert supervisor["rss_mib"] < 60, supervisor
    commands = [p["command"] for p in tree.values()]
    assert not [c for c in commands if "huey" in c or "modelfactory train" in c], commands


def _process_tree(root: int) -> dict[int, dict[str, Any]]:
    """`root` and its descendants from /proc: {pid: {"command", "rss_mib"}}."""
    parents, info = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            )
            status = (entry / "status").read_text()
            rss = next(
                (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")),
                0,
            )
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            info[int(entry.name)] = {"command": command, "rss_mib": rss / 1024}
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return {pid: info[pid] for pid in tree if pid in info}


def test_dev_records_its_first_champions_as_approved_by_make_dev(
    dev: Dev, monkeypatch: pytest.MonkeyPatch
) -> None:
    """breast_cancer is `policy: manual`: the champion dev's first training made is on
    record as approved by `make dev`, not by whoever ran it."""
    monkeypatch.setenv("MODELFACTORY_HOME", str(dev.home))
    (move,) = [e for e in audit_log().timeline("breast_cancer") if e.kind == "promote"]
    assert move.details["actor"] == "approved by make dev"


def test_the_first_trainings_links_follow_the_ports_dev_was_started_on(dev: Dev) -> None:
    """Run metadata, the model card and the alerts of the trainings dev ran before its UIs."""
    dagster, mlflow = (
        f"http://localhost:{dev.ports['dagster']}",
        f"http://localhost:{dev.ports['mlflow']}",
    )
    promoted = [a for a in read_alerts(dev.home / "alerts.jsonl") if a.event == "promoted"]
    assert {a.model.split(".")[0] for a in promoted} >= {"breast_cancer", MODEL}
    for alert in promoted:
        assert alert.links["run"].startswith(f"{dagster}/runs/"), alert.links
        assert alert.links["v1 in MLflow"].startswith(f"{mlflow}/#/models/"), alert.links

    cards = sorted((dev.home / "mlflow" / "artifacts").glob("*/*/artifacts/model_card.md"))
    assert cards
    for card in cards:
        links = set(re.findall(r"http://localhost:\d+[^\s)>\]]*", card.read_text()))
        assert links and all(link.startswith((dagster, mlflow)) for link in links), links
        assert any(link.startswith(f"{dagster}/assets/") for link in links)  # lineage

    data = dev.graphql(
        "query($path: [String!]!) { assetOrError(assetKey: {path: $path}) { ... on Asset {"
        " assetMaterializations(limit: 1) { metadataEntries { label"
        " ... on UrlMetadataEntry { url } } } } } }",
        path=[MODEL, "candidate"],
    )
    (materialization,) = data["assetOrError"]["assetMaterializations"]
    urls = {e["label"]: e["url"] for e in materialization["metadataEntries"] if "url" in e}
    assert urls["mlflow_run"].startswith(f"{mlflow}/#/experiments/"), urls


def test_materialize_all_on_each_models_group_succeeds_in_the_ui(browser, dev: Dev) -> None:
    """As a newcomer's first click: every group's Materialize all ends in runs that succeed.

    A partitioned group opens Dagster's partition dialog: all partitions, Launch backfill.
    """
    started = time.monotonic()
    groups = _asset_groups(dev)
    assert {"breast_cancer", MODEL} <= set(groups)
    with Offline(browser) as offline:
        page = offline.context.new_page()
        launched = {
            group: _materialize_all(page, dev, location, group)
            for group, location in groups.items()
        }
        outcomes = {
            group: _wait_for_runs(dev, what, timeout=600) for group, what in launched.items()
        }
        failed = {
            g: runs for g, runs in outcomes.items() if any(s != "SUCCESS" for s in runs.values())
        }
        assert not failed, f"runs that did not succeed, by group: {failed}"
        for runs in outcomes.values():  # and the UI says so, as a person reads it
            for run_id in (r for r in runs if not r.startswith("backfill ")):
                page.goto(f"{dev.url('dagster')}/runs/{run_id}")
                page.get_by_text("Success", exact=True).first.wait_for(timeout=30_000)
        assert offline.refused == []
    print(f"Materialize all on {sorted(groups)}: {time.monotonic() - started:.0f} s")


def _asset_groups(dev: Dev) -> dict[str, str]:
    """Every asset group in the workspace, with its code location."""
    data = dev.graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {"
        " ... on RepositoryLocation { repositories { assetGroups { groupName } } } } } } } }"
    )
    return {
        group["groupName"]: entry["name"]
        for entry in data["workspaceOrError"]["locationEntries"]
        for repository in entry["locationOrLoadError"]["repositories"]
        for group in repository["assetGroups"]
    }


def _materialize_all(page, dev: Dev, location: str, group: str) -> dict[str, str]:
    """Click Materialize all on the group's page; answer the partition dialog if one opens.
    Returns what was launched: {"run": id} or {"backfill": id}."""
    page.goto(f"{dev.url('dagster')}/locations/{location}/asset-groups/{group}")
    button = page.get_by_role("button", name="Materialize all")
    button.wait_for()
    _dismiss_welcome(page)
    before = _ui_runs(dev) | _backfills(dev)
    button.click()
    dialog = page.get_by_role("dialog")
    launch_backfill = dialog.get_by_role("button", name="Launch backfill")
    launched_run = page.get_by_text(re.compile(r"^Launched run"))
    launch_backfill.or_(launched_run).first.wait_for(timeout=30_000)
    if launch_backfill.is_visible():
        dialog.get_by_role("button", name="All", exact=True).click()
        launch_backfill.click()
        dialog.wait_for(state="hidden", timeout=30_000)
    deadline = time.monotonic() + 30
    while not (new := (_ui_runs(dev) | _backfills(dev)) - before):
        assert time.monotonic() < deadline, f"{group}: Materialize all launched nothing"
        time.sleep(0.5)
    (launched,) = new
    kind, _, key = launched.partition(":")
    return {kind: key}


def _dismiss_welcome(page) -> None:
    """The Dagster UI greets a new browser with a newsletter dialog; a person skips it."""
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Skip").click(timeout=3_000)


def _ui_runs(dev: Dev) -> set[str]:
    data = dev.graphql(
        '{ runsOrError(filter: {tags: [{key: "dagster/from_ui", value: "true"}]}) {'
        " ... on Runs { results { runId tags { key } } } } }"
    )
    return {
        f"run:{run['runId']}"
        for run in data["runsOrError"]["results"]
        if "dagster/backfill" not in {tag["key"] for tag in run["tags"]}
    }


def _backfills(dev: Dev) -> set[str]:
    data = dev.graphql(
        "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id } } } }"
    )
    return {f"backfill:{b['id']}" for b in data["partitionBackfillsOrError"]["results"]}


def _wait_for_runs(dev: Dev, launched: dict[str, str], timeout: float) -> dict[str, str]:
    """The status of every run a launch made, once all have ended ({run id: status}); a
    backfill that did not complete is one more entry, under `backfill <id>`."""
    backfill = launched.get("backfill")
    if backfill is None:
        filter_ = {"runIds": [launched["run"]]}
    else:
        filter_ = {"tags": [{"key": "dagster/backfill", "value": backfill}]}
    deadline = time.monotonic() + timeout
    while True:
        data = dev.graphql(
            "query($filter: RunsFilter!) { runsOrError(filter: $filter) { ... on Runs {"
            " results { runId status } } } }",
            filter=filter_,
        )
        runs = {r["runId"]: r["status"] for r in data["runsOrError"]["results"]}
        ended = all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in runs.values())
        status = _backfill_status(dev, backfill) if backfill else None
        if ended and status not in ("REQUESTED", "CANCELING") and (runs or backfill):
            if status not in (None, "COMPLETED", "COMPLETED_SUCCESS"):
                runs[f"backfill {backfill}"] = status
            return runs
        assert time.monotonic() < deadline, f"{launched} not done after {timeout:.0f} s: {runs}"
        time.sleep(2)


def _backfill_status(dev: Dev, backfill_id: str) -> str:
    data = dev.graphql(
        "query($id: String!) { partitionBackfillOrError(backfillId: $id) {"
        " ... on PartitionBackfill { status } } }",
        id=backfill_id,
    )
    return data["partitionBackfillOrError"]["status"]
