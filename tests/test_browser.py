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

import json
import os
import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import LiveServer, train_with
from modelfactory.project import load_project
from modelfactory.resources import local_home, model_registry, rollout_store
from modelfactory.serving import create_app
from modelfactory.serving.app import ServingSettings

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
