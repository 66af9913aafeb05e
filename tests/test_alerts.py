"""Alerts on real parts: a local HTTP server stands in for Slack's Web API, the notifier is the
one `modelfactory.stores.home.notifier()` builds from the environment, and the run-failure
sensor is evaluated on a real failed run, through Dagster's run status sensor context."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    build_run_status_sensor_context,
)

from conftest import free_port
from modelfactory.orchestration.assets import train_job_name
from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.runs import seed_data
from modelfactory.orchestration.sensors import RUN_FAILURES_SENSOR
from modelfactory.project.loader import load_project
from modelfactory.stores.home import local_home, notifier
from modelfactory.stores.notify import Alert, Delivery, read_alerts, read_deliveries

MODEL = "demand_forecast"
TOKEN = "xoxb-test-token"
CHANNEL = "#ml-alerts"
MLFLOW = "http://localhost:5000/#/models/demand_forecast/versions/2"


@dataclass
class SlackStandIn:
    """Slack's Web API on 127.0.0.1: records every call, answers with `status` and `answer`."""

    status: int = 200
    answer: bytes = b'{"ok": true, "channel": "C0123", "ts": "1700000000.000100"}'
    calls: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.calls.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.end_headers()
                self.wfile.write(stand_in.answer)

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandIn]:
    """Slack configured as in production, except that its API is the stand-in."""
    stand_in = SlackStandIn()
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("MODELFACTORY_SLACK_CHANNEL", CHANNEL)
    monkeypatch.setenv("MODELFACTORY_SLACK_API_URL", stand_in.url)
    yield stand_in
    stand_in.close()


def rollback_alert() -> Alert:
    return Alert(
        model=MODEL,
        event="canary_rollback",
        text="rolled back v2 -> v1: error rate 5.0% > 1.0% <at step 25%>",
        links={"mlflow": MLFLOW},
    )


def test_an_alert_is_posted_to_slack_and_kept_in_the_log(slack: SlackStandIn) -> None:
    delivery = notifier().send(rollback_alert())

    assert delivery.ok and delivery.delivered_to == ("log", f"slack:{CHANNEL}")
    (call,) = slack.calls
    assert call["path"] == "/api/chat.postMessage"
    assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert call["body"]["channel"] == CHANNEL
    text = call["body"]["text"]
    assert MODEL in text and "canary_rollback" in text and "(error)" in text
    assert f"<{MLFLOW}|mlflow>" in text  # a link in Slack's mrkdwn
    assert "&lt;at step 25%&gt;" in text  # the alert's own text is never read as markup
    (logged,) = read_deliveries(local_home().alerts_log)
    assert logged == delivery
    assert read_alerts(local_home().alerts_log) == [delivery.alert]


def test_without_a_token_nothing_is_posted_and_the_log_has_it(
    slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN")

    delivery = notifier().send(rollback_alert())

    assert slack.calls == []
    assert delivery.ok and delivery.delivered_to == ("log",)
    assert read_deliveries(local_home().alerts_log) == [delivery]


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (200, b'{"ok": false, "error": "channel_not_found"}', "channel_not_found"),
        (200, b'{"ok": false, "error": "invalid_auth"}', "invalid_auth"),
        (500, b"upstream connect error", "HTTP 500"),
    ],
)
def test_a_slack_refusal_is_recorded_not_raised(
    slack: SlackStandIn, status: int, answer: bytes, expected: str
) -> None:
    slack.status, slack.answer = status, answer

    delivery = notifier().send(rollback_alert())

    assert slack.calls  # it did try
    assert not delivery.ok and expected in delivery.error
    assert delivery.delivered_to == ("log",)
    (logged,) = read_deliveries(local_home().alerts_log)
    assert logged.error == delivery.error and logged.alert.event == "canary_rollback"


def test_an_unreachable_slack_is_recorded_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("MODELFACTORY_SLACK_CHANNEL", CHANNEL)
    monkeypatch.setenv("MODELFACTORY_SLACK_API_URL", f"http://127.0.0.1:{free_port()}/api/")

    delivery = notifier().send(rollback_alert())

    assert not delivery.ok and "refused" in delivery.error.lower()
    assert read_deliveries(local_home().alerts_log)[0].error == delivery.error


def test_alert_lines_written_before_slack_still_read() -> None:
    log = local_home().ensure().alerts_log
    old = {"model": MODEL, "event": "drift_retrain", "text": "retraining", "severity": "warning"}
    log.write_text(json.dumps({**old, "links": {}, "at": "2026-01-01T00:00:00+00:00"}) + "\n")

    notifier().send(rollback_alert())

    first, second = read_deliveries(log)
    assert first == Delivery(Alert(**old, at="2026-01-01T00:00:00+00:00"))
    assert second.alert.event == "canary_rollback"
    assert [a.event for a in read_alerts(log)] == ["drift_retrain", "canary_rollback"]


def failure_alert(project, job_name: str, slack: SlackStandIn):
    """Run `job_name` (it fails), then evaluate the run-failure sensor on it as the daemon
    would; returns the run and what reached Slack."""
    instance = DagsterInstance.get()
    defs = build_definitions(project)
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    sensor = defs.resolve_sensor_def(RUN_FAILURES_SENSOR)
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    context = build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"notifier": notifier()},
    )
    sensor(context)
    (call,) = slack.calls
    assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"  # Dagster resolved the EnvVar
    return result.dagster_run, call["body"]["text"]


@pytest.mark.slow
def test_a_failed_blocking_check_is_announced_with_the_run(
    copy_example, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELFACTORY_DAGSTER_URL", "http://dagster.internal/")
    project = load_project(copy_example(MODEL, segments=False))
    seed_data(project)
    sales = local_home().data(MODEL) / "sales.csv"
    with sales.open("a", newline="") as f:  # a negative price: the raw schema check blocks
        csv.writer(f).writerow(["2026-05-01", "p999", "uk", -3.0, 0, 12.5, 40.0])

    run, text = failure_alert(project, train_job_name(MODEL), slack)

    run_url = f"http://dagster.internal/runs/{run.run_id}"
    assert MODEL in text and "run_failed" in text and f"{MODEL}_train" in text
    assert f"Check raw_schema on {MODEL}/raw failed (ERROR): price" in text
    assert f"Step {MODEL}__raw:" in text
    assert f"<{run_url}|run>" in text
    (alert,) = read_alerts(local_home().alerts_log)
    assert (alert.event, alert.severity, alert.links) == ("run_failed", "error", {"run": run_url})


@pytest.mark.slow
def test_a_failing_step_is_announced_with_its_own_error(copy_example, slack: SlackStandIn) -> None:
    root = copy_example(MODEL, segments=False)
    with (root / "train.py").open("a") as f:  # the data scientist's code breaks mid-run
        f.write("\n\ndef train(X, y, params):\n    raise MemoryError('fitting needs 64 GiB')\n")
    project = load_project(root)
    seed_data(project)

    run, text = failure_alert(project, train_job_name(MODEL), slack)

    assert f"{MODEL}_train run {run.run_id[:8]} failed." in text
    assert f"Step {MODEL}__candidate:" in text and "MemoryError: fitting needs 64 GiB" in text
    assert "Check " not in text  # the data was fine
    assert f"<http://localhost:3000/runs/{run.run_id}|run>" in text
