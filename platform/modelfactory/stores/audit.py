"""The audit trail: every training run, evaluation, champion move and alert of every model,
in four relational tables, so "what was serving on May 1st, and why?" is a query.

    mf_training_runs   one per candidate: Dagster run id (the session), version, data hash,
                       code version, git sha, params, environment
    mf_evaluations     one per gate verdict: the candidate's standard metrics (the same set
                       for every model of a task), the champion it was compared with
    mf_alias_moves     every promotion and rollback: from, to, who, why, which run
    mf_alerts          every alert sent, whatever its channel

The tables live in the platform's own database (role `audit`), beside the rollout table:
sqlite in MODELFACTORY_HOME locally, MODELFACTORY_SERVING_DB (Postgres) in production. Not
in the DuckDB warehouse: runs, sensors and the CLI write the trail from several processes
at once, which a database server (or sqlite's WAL) takes and a DuckDB file does not.

Every write is its own short transaction and names the model or segment (`<model>.<seg>`)
it is about. MLflow's registry keeps the same moves as tags (registry.history); the trail
adds the runs, verdicts and alerts around them, and a time to ask about.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from dagster import ConfigurableResource

from modelfactory.stores import generation as serving_generation
from modelfactory.stores.sql_engines import tables_for

if TYPE_CHECKING:
    import sqlalchemy as sa

    from modelfactory.stores.registry import AliasMove

# Deferred imports: sqlalchemy loads with the first audit record written or read: importing the
# module (every code server does, for the resource) opens no database.

__all__ = [
    "APPROVED_BY",
    "Alert",
    "AuditEvent",
    "AuditLog",
    "actor",
    "by_whom",
    "recorded",
]

APPROVED_BY = "approved by "  # + who: the actor of an approved promotion

log = logging.getLogger("modelfactory.audit")


@dataclass(frozen=True)
class AuditEvent:
    """One line of a model's timeline."""

    at: datetime
    kind: str  # trained | evaluated | promote | rollback | alert
    unit: str
    version: str | None
    text: str
    details: dict[str, Any]


class AuditLog(ConfigurableResource):
    """The audit tables behind any SQLAlchemy URL (role `audit`)."""

    url: str

    # -- writing ----------------------------------------------------------------------

    def record_training(
        self,
        *,
        unit: str,
        version: str,
        dagster_run_id: str,
        data_hash: str,
        code_version: str,
        git_sha: str,
        params: dict[str, Any],
        environment: dict[str, str],
    ) -> None:
        self._insert(
            "mf_training_runs",
            unit=unit,
            version=version,
            dagster_run_id=dagster_run_id,
            data_hash=data_hash,
            code_version=code_version,
            git_sha=git_sha,
            params=json.dumps(params, default=str),
            environment=json.dumps(environment),
        )

    def record_evaluation(
        self,
        *,
        unit: str,
        version: str,
        dagster_run_id: str,
        compared_with: str | None,
        passed: bool,
        metrics: dict[str, float],
        summary: str,
    ) -> None:
        self._insert(
            "mf_evaluations",
            unit=unit,
            version=version,
            dagster_run_id=dagster_run_id,
            compared_with=compared_with,
            passed=passed,
            metrics=json.dumps(metrics),
            summary=summary,
        )

    def record_move(self, move: AliasMove) -> None:
        self._insert(  # stamped now, to the microsecond (the registry's `at` keeps seconds)
            "mf_alias_moves",
            unit=move.model,
            event=move.event,
            from_version=move.from_version,
            to_version=move.to_version,
            actor=move.actor,
            reason=move.reason,
            dagster_run_id=move.dagster_run_id,
        )

    def record_alert(self, alert: Alert) -> None:
        self._insert(
            "mf_alerts",
            unit=alert.model,
            event=alert.event,
            severity=alert.severity,
            text=alert.text,
            links=json.dumps(alert.links),
        )

    # -- reading ----------------------------------------------------------------------

    def timeline(self, unit: str) -> list[AuditEvent]:
        """Everything recorded about the model (or segment), oldest first."""
        events = [
            *(_trained(r) for r in self._rows("mf_training_runs", unit)),
            *(_evaluated(r) for r in self._rows("mf_evaluations", unit)),
            *(_moved(r) for r in self._rows("mf_alias_moves", unit)),
            *(_alerted(r) for r in self._rows("mf_alerts", unit)),
        ]
        return sorted(events, key=lambda e: e.at)

    def serving_at(self, unit: str, at: datetime) -> AuditEvent | None:
        """The champion move in force at `at`: the last promotion or rollback before it."""
        import sqlalchemy as sa

        tables, engine = tables_for(self.url, _declare)
        moves = tables["mf_alias_moves"]
        query = (
            sa.select(moves)
            .where((moves.c.unit == unit) & (moves.c.at <= _stored(at, engine)))
            .order_by(moves.c.at.desc(), moves.c.id.desc())
            .limit(1)
        )
        with engine.connect() as conn:
            row = conn.execute(query).first()
        return _moved(row._mapping) if row is not None else None

    def training_of(self, unit: str, version: str) -> AuditEvent | None:
        """The training run that made `version`, if the trail recorded it."""
        rows = self._rows("mf_training_runs", unit, version=version)
        return _trained(rows[-1]) if rows else None

    def first_move(self, unit: str) -> AuditEvent | None:
        moves = [_moved(r) for r in self._rows("mf_alias_moves", unit)]
        return min(moves, key=lambda e: e.at) if moves else None

    # -- plumbing ---------------------------------------------------------------------

    def _insert(self, table: str, **values: Any) -> None:
        """One row, stamped with the time it is recorded: events are recorded as they happen,
        so one clock (this one) orders the whole timeline.

        The trail records actions that have already happened (a version registered, an alias
        moved): a failure to write it is logged loudly, never turned into the failure of the
        action it records.
        """
        import sqlalchemy as sa

        values["at"] = datetime.now(UTC)
        try:
            tables, engine = tables_for(self.url, _declare)
            # A champion move also tells every endpoint to re-read its routes (generation.py).
            signal = serving_generation.ensure(self.url) if table == "mf_alias_moves" else None
            with engine.begin() as conn:
                conn.execute(sa.insert(tables[table]).values(**values))
                if signal is not None:
                    serving_generation.bump(conn, signal)
        except Exception as exc:
            unit = values.get("unit")
            log.error("%s: not recorded in the audit trail (%s): %s", unit, table, exc)

    def _rows(self, table: str, unit: str, **equal: str) -> list[Any]:
        """The unit's rows of `table` (where each column in `equal` has its value), oldest
        first."""
        import sqlalchemy as sa

        tables, engine = tables_for(self.url, _declare)
        t = tables[table]
        query = sa.select(t).where(t.c.unit == unit, *(t.c[k] == v for k, v in equal.items()))
        with engine.connect() as conn:
            return [row._mapping for row in conn.execute(query.order_by(t.c.id))]


def recorded(
    version: Any, registry: Any, audit: AuditLog, what: Literal["params", "environment"]
) -> dict[str, Any] | None:
    """A version's training `params` or `environment`: the audit trail's, else the version's
    `mf.params` tag (both typed, JSON), else its MLflow run's (strings, decoded where they
    are JSON); None when nothing recorded them."""
    trained = audit.training_of(version.model, version.version)
    if trained is not None:
        return dict(trained.details[what])
    if what == "params" and "mf.params" in version.tags:
        return dict(json.loads(version.tags["mf.params"]))
    if version.run_id is None:
        return None
    logged = registry.run_params(version.run_id)
    if what == "environment":
        return {k.removeprefix("env."): v for k, v in logged.items() if k.startswith("env.")}
    return {k: _decoded(v) for k, v in logged.items() if not k.startswith("env.")}


def _decoded(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _trained(row: Any) -> AuditEvent:
    text = (
        f"trained v{row['version']} in run {row['dagster_run_id'][:8]}: data "
        f"{row['data_hash']}, code {row['code_version']} (git {row['git_sha'][:12]}), "
        f"params {row['params']}"
    )
    details = {
        "dagster_run_id": row["dagster_run_id"],
        "data_hash": row["data_hash"],
        "code_version": row["code_version"],
        "git_sha": row["git_sha"],
        "params": json.loads(row["params"]),
        "environment": json.loads(row["environment"]),
    }
    return AuditEvent(_utc(row["at"]), "trained", row["unit"], row["version"], text, details)


def _evaluated(row: Any) -> AuditEvent:
    metrics = json.loads(row["metrics"])
    against = f"v{row['compared_with']}" if row["compared_with"] else "no champion"
    text = f"evaluated v{row['version']} against {against}: {row['summary']}; " + ", ".join(
        f"{k}={v:.4g}" for k, v in metrics.items()
    )
    details = {"metrics": metrics, "passed": bool(row["passed"]), "run": row["dagster_run_id"]}
    return AuditEvent(_utc(row["at"]), "evaluated", row["unit"], row["version"], text, details)


def actor(by: str | None = None) -> str:
    """Who acts, for the record (an approval, a rollback): `by` if given, else
    MODELFACTORY_ACTOR or $USER, else git's user.email; "unknown" when nothing says.

    The one answer for every command a person runs, so an approval and a rollback by the
    same person name them the same way in the trail."""
    for who in (by, os.environ.get("MODELFACTORY_ACTOR"), os.environ.get("USER")):
        if who and who.strip():
            return who.strip()
    try:
        email = subprocess.run(
            ["git", "config", "user.email"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        email = ""
    return email or "unknown"


def by_whom(actor: str | None) -> str:
    """A move's actor as words after the move: `by dagster:<run>`, `by alice` (a rollback),
    or `approved by alice` (an approved promotion records its actor so); `by unknown` for a
    champion whose move is not on record (its alias was set outside Model Factory)."""
    if not actor:
        return "by unknown"
    return actor if actor.startswith(APPROVED_BY) else f"by {actor}"


def _moved(row: Any) -> AuditEvent:
    verb = "promoted" if row["event"] == "promote" else "rolled back"
    text = (
        f"{verb}: champion v{row['from_version'] or 'none'} -> v{row['to_version']} "
        f"{by_whom(row['actor'])}: {row['reason']}"
    )
    details = {
        "from_version": row["from_version"],
        "actor": row["actor"],
        "reason": row["reason"],
        "dagster_run_id": row["dagster_run_id"],
    }
    return AuditEvent(_utc(row["at"]), row["event"], row["unit"], row["to_version"], text, details)


def _alerted(row: Any) -> AuditEvent:
    text = f"alert {row['event']} ({row['severity']}): {row['text']}"
    details = {"event": row["event"], "links": json.loads(row["links"])}
    return AuditEvent(_utc(row["at"]), "alert", row["unit"], None, text, details)


def _stored(value: datetime, engine: Any) -> datetime:
    """A UTC time as the database compares it: sqlite keeps naive UTC text, Postgres
    timestamptz."""
    utc = value.astimezone(UTC)
    return utc.replace(tzinfo=None) if engine.dialect.name == "sqlite" else utc


def _utc(value: datetime) -> datetime:
    """sqlite hands back naive datetimes (written as UTC), Postgres the session's zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _declare(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The four tables; each row has an id, a time and the model or segment it is about."""
    import sqlalchemy as sa

    def table(name: str, *columns: sa.Column) -> sa.Table:
        return sa.Table(
            name,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
            sa.Column("unit", sa.String(110), nullable=False, index=True),
            *columns,
        )

    text, short = sa.Text, sa.String(64)
    return {
        t.name: t
        for t in (
            table(
                "mf_training_runs",
                sa.Column("version", short, nullable=False),
                sa.Column("dagster_run_id", short, nullable=False),
                sa.Column("data_hash", short, nullable=False),
                sa.Column("code_version", short, nullable=False),
                sa.Column("git_sha", short, nullable=False),
                sa.Column("params", text, nullable=False),
                sa.Column("environment", text, nullable=False),
            ),
            table(
                "mf_evaluations",
                sa.Column("version", short, nullable=False),
                sa.Column("dagster_run_id", short, nullable=False),
                sa.Column("compared_with", short, nullable=True),
                sa.Column("passed", sa.Boolean, nullable=False),
                sa.Column("metrics", text, nullable=False),
                sa.Column("summary", text, nullable=False),
            ),
            table(
                "mf_alias_moves",
                sa.Column("event", sa.String(16), nullable=False),
                sa.Column("from_version", short, nullable=True),
                sa.Column("to_version", short, nullable=False),
                sa.Column("actor", sa.String(200), nullable=False),
                sa.Column("reason", text, nullable=False),
                sa.Column("dagster_run_id", short, nullable=True),
            ),
            table(
                "mf_alerts",
                sa.Column("event", sa.String(64), nullable=False),
                sa.Column("severity", sa.String(16), nullable=False),
                sa.Column("text", text, nullable=False),
                sa.Column("links", text, nullable=False),
            ),
        )
    }


@dataclass(frozen=True)
class Alert:
    """What happened to which model, and where to look (label -> URL: run, report, mlflow)."""

    model: str
    event: str  # e.g. "run_failed", "drift_retrain", "canary_rollback", "rollout_completed"
    text: str
    severity: str = "error"  # error | warning | info
    links: dict[str, str] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
