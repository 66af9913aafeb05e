"""Telling people: rollbacks, failed checks, drift retrains, promotions.

The `notifier` resource appends each alert as a JSON line to a log file under
MODELFACTORY_HOME (the local profile), and logs it; the production profile adds Slack.
Callers say what happened and link to where to look; how it is delivered is decided here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dagster import ConfigurableResource

__all__ = ["Alert", "Notifier", "read_alerts"]

log = logging.getLogger("modelfactory.alerts")


@dataclass(frozen=True)
class Alert:
    model: str
    event: str  # e.g. "canary_rollback", "rollout_completed"
    text: str
    severity: str = "error"  # error | warning | info
    links: dict[str, str] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class Notifier(ConfigurableResource):
    """Sends alerts by role (`notifier`); locally, a JSON-lines file."""

    log_path: str

    def send(self, alert: Alert) -> None:
        path = Path(self.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(json.dumps(asdict(alert)) + "\n")
        level = {"error": logging.ERROR, "warning": logging.WARNING}.get(alert.severity)
        log.log(level or logging.INFO, "%s: %s", alert.model, alert.text)


def read_alerts(log_path: str | Path) -> list[Alert]:
    path = Path(log_path)
    if not path.exists():
        return []
    return [Alert(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
