"""Telling people: failed runs and checks, drift retrains, promotions, rollbacks.

`Notifier` is the `notifier` resource. Every alert is appended as a JSON line to a log file
under MODELFACTORY_HOME, the audit of what was announced and whether it got through. When a
Slack bot token and channel are configured (`modelfactory.stores.home.notifier()` reads
SLACK_BOT_TOKEN, MODELFACTORY_SLACK_CHANNEL and MODELFACTORY_SLACK_API_URL), the alert is
also posted with dagster-slack's client.

Delivery is best effort: a Slack outage, a revoked token or a wrong channel is logged as a
warning and recorded on the alert's line (`delivery_error`), never raised into the sensor or
asset that had something to say. Callers say what happened and link to where to look; how it
is delivered is decided here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from modelfactory.stores.audit import Alert, AuditLog

if TYPE_CHECKING:
    from slack_sdk import WebClient

# Deferred imports: dagster-slack and slack_sdk load only when an alert goes to Slack; the log
# and webhook channels need neither.

__all__ = [
    "SLACK_API_URL",
    "Alert",
    "Delivery",
    "Notifier",
    "read_alerts",
    "read_deliveries",
    "slack_text",
]

log = logging.getLogger("modelfactory.alerts")

SLACK_API_URL = "https://slack.com/api/"
SLACK_TIMEOUT_SECONDS = 10  # a sensor tick waits at most this long for Slack
MAX_TEXT = 3000  # beyond this Slack folds the message; the run link has the rest
_ICONS = {"error": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}
_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}


_ALERT_FIELDS = {f.name for f in fields(Alert)}


@dataclass(frozen=True)
class Delivery:
    """One alert as it was sent: where it arrived, and why Slack did not take it if it did not."""

    alert: Alert
    delivered_to: tuple[str, ...] = ("log",)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> str:
        record = {**asdict(self.alert), "delivered_to": list(self.delivered_to)}
        return json.dumps({**record, "delivery_error": self.error})

    @classmethod
    def from_json(cls, line: str) -> Delivery:
        """Reads old lines too: written before Slack, they carry only the alert (log only)."""
        record = json.loads(line)
        alert = Alert(**{k: v for k, v in record.items() if k in _ALERT_FIELDS})
        delivered_to = tuple(record.get("delivered_to") or ("log",))
        return cls(alert, delivered_to, record.get("delivery_error"))


class Notifier(ConfigurableResource):
    """Sends alerts by role (`notifier`): always to the log file, to Slack when configured."""

    log_path: str = Field(description="JSON-lines audit of every alert and its delivery.")
    slack_token: str | None = Field(
        default=None,
        description="Slack bot token (xoxb-...). Pass EnvVar(...) so the UI never shows it.",
    )
    slack_channel: str | None = Field(default=None, description="Channel name or ID to post in.")
    slack_api_url: str | None = Field(
        default=None, description=f"Slack Web API base URL (a proxy, GovSlack); {SLACK_API_URL}"
    )

    audit_url: str | None = Field(
        default=None, description="The platform database whose audit trail records each alert."
    )

    @property
    def posts_to_slack(self) -> bool:
        return bool(self.slack_token and self.slack_channel)

    def send(self, alert: Alert) -> Delivery:
        """Post to Slack if configured, then log; a Slack failure is recorded, never raised."""
        delivery = self._post_to_slack(alert) if self.posts_to_slack else Delivery(alert)
        path = Path(self.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(delivery.to_json() + "\n")
        log.log(_LEVELS.get(alert.severity, logging.INFO), "%s: %s", alert.model, alert.text)
        self._audit(alert)
        return delivery

    def _audit(self, alert: Alert) -> None:
        """Into the audit trail too; like Slack, a failure there is logged, never raised."""
        if not self.audit_url:
            return
        try:
            AuditLog(url=self.audit_url).record_alert(alert)
        except Exception as exc:  # the alert is in the log file already
            log.warning(
                "%s: the %s alert is not in the audit trail: %s", alert.model, alert.event, exc
            )

    def _post_to_slack(self, alert: Alert) -> Delivery:
        try:
            self._slack_client().chat_postMessage(
                channel=self.slack_channel, text=slack_text(alert), unfurl_links=False
            )
        except Exception as exc:  # any failure at all: best effort by design (see above)
            error = _describe_slack_error(exc)
            log.warning("%s: the %s alert did not reach Slack: %s", alert.model, alert.event, error)
            return Delivery(alert, ("log",), error)
        return Delivery(alert, ("log", f"slack:{self.slack_channel}"))

    def _slack_client(self) -> WebClient:
        """dagster-slack's client, pointed at slack_api_url, with a short timeout.

        Dagster resolves an EnvVar token when it builds the resource; a notifier used outside
        Dagster (a script, the CLI) resolves it here.
        """
        from dagster_slack import SlackResource

        token = self.slack_token
        if isinstance(token, EnvVar):
            token = token.get_value()
        if not token:
            raise ValueError("the Slack token's environment variable is not set")
        client = SlackResource(token=token).get_client()
        client.base_url = (self.slack_api_url or SLACK_API_URL).rstrip("/") + "/"
        client.timeout = SLACK_TIMEOUT_SECONDS
        return client


def slack_text(alert: Alert) -> str:
    """The message in Slack mrkdwn: model, event and severity, what happened, the links."""
    icon = _ICONS.get(alert.severity, _ICONS["info"])
    body = _escape(alert.text)
    if len(body) > MAX_TEXT:
        body = body[: MAX_TEXT - 1] + "…"
    lines = [f"{icon} *{_escape(alert.model)}*: {_escape(alert.event)} ({alert.severity})", body]
    if alert.links:
        lines.append(" · ".join(f"<{url}|{_escape(label)}>" for label, url in alert.links.items()))
    return "\n".join(lines)


def read_alerts(log_path: str | Path) -> list[Alert]:
    """Every alert in the log, oldest first."""
    return [delivery.alert for delivery in read_deliveries(log_path)]


def read_deliveries(log_path: str | Path) -> list[Delivery]:
    """Every alert in the log with where it was delivered, oldest first."""
    path = Path(log_path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [Delivery.from_json(line) for line in lines if line.strip()]


def _escape(text: str) -> str:
    """Slack reads &, < and > as markup; everything else is sent as it is."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _describe_slack_error(exc: Exception) -> str:
    """Slack's own error code where it answered (`channel_not_found`), else the HTTP or
    network failure, short enough for a log line."""
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        response = exc.response
        data = response.data if isinstance(response.data, dict) else {}
        reason = data.get("error") or str(response.data)[:200] or "no answer"
        return f"Slack answered HTTP {response.status_code}: {reason}"
    return f"{type(exc).__name__}: {exc}"[:300]
