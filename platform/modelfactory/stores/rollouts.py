"""Rollout state: which versions an endpoint serves, and how far a canary has come.

The state lives in a database table, not in a server's memory, so the endpoint, the
`<model>/endpoint` asset and the canary sensor (three processes) agree on it, and a restart
resumes where it stopped. Locally the table sits in a sqlite file under MODELFACTORY_HOME;
any SQLAlchemy URL (Postgres in production) works the same.

A rollout moves through these states; only the first three are *active*:

    pending ──► shadow ──► canary (step by step) ──► completed
       │          │           │
       └──────────┴───────────┴──► rolled_back | cancelled

`pending` is reserved by the promotion itself, before the `champion` alias moves, so an
endpoint never serves a new champion to everyone in the moment between promotion and the
start of its canary. When a model has several active rollouts (a newer one reserved while an
older one runs), the newest is the one that counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource

from modelfactory.errors import ModelFactoryError
from modelfactory.stores import generation as serving_generation
from modelfactory.stores.sql_engines import tables_for

if TYPE_CHECKING:
    import sqlalchemy as sa

    from modelfactory.project.spec import CanarySpec

# Deferred imports: sqlalchemy loads with the first rollout read: importing the module (the
# sensors and the endpoint's refresh do) opens no database.

__all__ = ["ACTIVE", "Rollout", "RolloutConflict", "RolloutStore"]

ACTIVE = ("pending", "shadow", "canary")
_TABLE = "mf_rollouts"


class RolloutConflict(ModelFactoryError):
    """The rollout changed under the caller (another process advanced or ended it)."""


@dataclass(frozen=True)
class Rollout:
    id: int
    model: str
    stable_version: str
    canary_version: str
    steps: tuple[int, ...]
    shadow: bool
    state: str
    stage: int  # index into steps while state is "canary"; -1 before
    percent: int  # share of requests the canary version answers
    started_at: datetime
    stage_started_at: datetime
    updated_at: datetime
    reason: str
    serving_error: str | None = None  # set by an endpoint that could not load the new version

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def describe(self) -> str:
        if self.state == "canary":
            where = f"step {self.stage + 1}/{len(self.steps)}: {self.percent}% of requests"
        else:
            where = self.state.replace("_", " ")
        return f"v{self.stable_version} -> v{self.canary_version}, {where}"

    def as_metadata(self) -> dict[str, Any]:
        return {
            "rollout_id": self.id,
            "rollout_state": self.state,
            "canary_percent": self.percent,
            "stable_version": self.stable_version,
            "canary_version": self.canary_version,
            "steps": " → ".join(f"{s}%" for s in self.steps),
            "shadow": self.shadow,
            "stage_started_at": self.stage_started_at.isoformat(timespec="seconds"),
            "reason": self.reason or "-",
            **({"serving_error": self.serving_error} if self.serving_error else {}),
        }


class RolloutStore(ConfigurableResource):
    """The rollout table behind any SQLAlchemy URL (role `rollouts`); each change is one
    guarded UPDATE, so two processes acting on the same rollout cannot both succeed."""

    url: str

    # -- reading ----------------------------------------------------------------------

    def active(self, model: str) -> Rollout | None:
        rows = self._select(lambda t: (t.c.model == model) & t.c.state.in_(ACTIVE))
        return rows[-1] if rows else None

    def all_active(self) -> dict[str, Rollout]:
        return {r.model: r for r in self._select(lambda t: t.c.state.in_(ACTIVE))}

    def latest(self, model: str) -> Rollout | None:
        rows = self._select(lambda t: t.c.model == model)
        return rows[-1] if rows else None

    def generation(self) -> int:
        """A number that changes with every rollout change and champion move the platform
        makes (stores/generation.py): what an endpoint reads each tick, in one query."""
        return serving_generation.read(self.url)

    def get(self, rollout_id: int) -> Rollout:
        rows = self._select(lambda t: t.c.id == rollout_id)
        if not rows:
            raise RolloutConflict(f"no rollout with id {rollout_id}")
        return rows[0]

    # -- changing ---------------------------------------------------------------------

    def reserve(
        self, model: str, *, stable: str, canary: str, spec: CanarySpec, reason: str
    ) -> Rollout:
        """A pending rollout: the endpoint keeps serving `stable` until it starts.

        If a rollout of the model is still under way, its *stable* version is the one that
        serves, so the new rollout starts from it, not from the unproven canary the alias
        points at. The older rollout is cancelled only when the new one starts: if the
        promotion fails, the older one simply carries on.
        """
        import sqlalchemy as sa

        under_way = self.active(model)
        if under_way is not None:
            stable = under_way.stable_version
        table, engine = self._table()
        signal = serving_generation.ensure(self.url)
        now = _now()
        with engine.begin() as conn:
            result = conn.execute(
                sa.insert(table).values(
                    model=model,
                    stable_version=stable,
                    canary_version=canary,
                    steps=json.dumps(spec.steps),
                    shadow=spec.shadow,
                    state="pending",
                    stage=-1,
                    percent=0,
                    started_at=now,
                    stage_started_at=now,
                    updated_at=now,
                    reason=reason,
                )
            )
            rollout_id = result.inserted_primary_key[0]
            serving_generation.bump(conn, signal)
        return self.get(rollout_id)

    def start(self, rollout: Rollout, reason: str = "started") -> Rollout:
        """pending → shadow (if configured) or the first canary step; older rollouts of the
        model that are still under way are cancelled (superseded)."""
        import sqlalchemy as sa

        table, engine = self._table()
        signal = serving_generation.ensure(self.url)
        with engine.begin() as conn:
            superseded = conn.execute(
                sa.update(table)
                .where(
                    (table.c.model == rollout.model)
                    & (table.c.id < rollout.id)
                    & table.c.state.in_(ACTIVE)
                )
                .values(
                    state="cancelled",
                    reason=f"superseded by v{rollout.canary_version}",
                    updated_at=_now(),
                )
            ).rowcount
            if superseded:
                serving_generation.bump(conn, signal)
        if rollout.shadow:
            return self._change(rollout, state="shadow", stage=-1, percent=0, reason=reason)
        return self._to_step(rollout, 0, reason)

    def advance(self, rollout: Rollout, reason: str) -> Rollout:
        """The next step; past the last step (100%) the rollout is complete."""
        return self._to_step(rollout, rollout.stage + 1, reason)

    def finish(self, rollout: Rollout, state: str, reason: str) -> Rollout:
        if state not in ("completed", "rolled_back", "cancelled"):
            raise ValueError(f"not a final rollout state: {state!r}")
        percent = 100 if state == "completed" else 0
        return self._change(rollout, state=state, percent=percent, reason=reason)

    def report_serving_error(self, rollout_id: int, error: str) -> None:
        """An endpoint could not serve the new version (it failed to load): the canary sensor
        rolls the rollout back on its next tick. The first report is kept."""
        import sqlalchemy as sa

        table, engine = self._table()
        with engine.begin() as conn:
            conn.execute(
                sa.update(table)
                .where((table.c.id == rollout_id) & table.c.serving_error.is_(None))
                .values(serving_error=error[:2000], updated_at=_now())
            )

    def cancel_active(self, model: str, reason: str) -> Rollout | None:
        rollout = self.active(model)
        return self.finish(rollout, "cancelled", reason) if rollout else None

    def _to_step(self, rollout: Rollout, stage: int, reason: str) -> Rollout:
        if stage >= len(rollout.steps) or rollout.steps[stage] >= 100:
            return self.finish(rollout, "completed", reason)
        return self._change(
            rollout, state="canary", stage=stage, percent=rollout.steps[stage], reason=reason
        )

    def _change(self, rollout: Rollout, **values: Any) -> Rollout:
        """Apply a change only if the row is still as the caller saw it."""
        import sqlalchemy as sa

        table, engine = self._table()
        signal = serving_generation.ensure(self.url)
        now = _now()
        values["updated_at"] = now
        moved = values.get("stage", rollout.stage) != rollout.stage
        if moved or values.get("state", rollout.state) != rollout.state:
            values["stage_started_at"] = now
        with engine.begin() as conn:
            changed = conn.execute(
                sa.update(table)
                .where(
                    (table.c.id == rollout.id)
                    & (table.c.state == rollout.state)
                    & (table.c.stage == rollout.stage)
                )
                .values(**values)
            ).rowcount
            if changed:
                serving_generation.bump(conn, signal)  # endpoints re-read the routes
        if not changed:
            current = self.get(rollout.id)
            raise RolloutConflict(
                f"{rollout.model}: rollout {rollout.id} is now {current.describe()}, "
                f"not {rollout.describe()}; nothing changed"
            )
        return self.get(rollout.id)

    # -- plumbing ---------------------------------------------------------------------

    def _select(self, where: Any) -> list[Rollout]:
        import sqlalchemy as sa

        table, engine = self._table()
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).where(where(table)).order_by(table.c.id)).all()
        return [_rollout(row._mapping) for row in rows]

    def _table(self) -> tuple[sa.Table, sa.Engine]:
        return tables_for(self.url, _declare)


def _declare(metadata: sa.MetaData) -> sa.Table:
    import sqlalchemy as sa

    return sa.Table(
        _TABLE,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(64), nullable=False, index=True),
        sa.Column("stable_version", sa.String(32), nullable=False),
        sa.Column("canary_version", sa.String(32), nullable=False),
        sa.Column("steps", sa.String(200), nullable=False),
        sa.Column("shadow", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("percent", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, default=""),
        sa.Column("serving_error", sa.Text, nullable=True),
    )


def _rollout(row: Any) -> Rollout:
    return Rollout(
        id=row["id"],
        model=row["model"],
        stable_version=row["stable_version"],
        canary_version=row["canary_version"],
        steps=tuple(json.loads(row["steps"])),
        shadow=bool(row["shadow"]),
        state=row["state"],
        stage=row["stage"],
        percent=row["percent"],
        started_at=_utc(row["started_at"]),
        stage_started_at=_utc(row["stage_started_at"]),
        updated_at=_utc(row["updated_at"]),
        reason=row["reason"] or "",
        serving_error=row["serving_error"],
    )


def _utc(value: datetime) -> datetime:
    """sqlite hands back naive datetimes; every time here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)
