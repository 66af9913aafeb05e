"""The serving generation: one number in the platform database that changes whenever what an
endpoint should serve may have changed.

Every champion move the platform makes is recorded in the audit trail (`mf_alias_moves`), and
every rollout change is an UPDATE of `mf_rollouts`; each of those writes also bumps this
number, in the same transaction. An endpoint serving a hundred models then reads one row per
tick and asks the registry and the rollout table again only when the number moved, instead of
asking the registry for each model's alias every second. A move made outside the platform
(the MLflow UI) bumps nothing: the endpoint's slow full reconcile catches it.

The table holds a single row (id 1), created with the table and never deleted.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from modelfactory.stores.sql_engines import tables_for

if TYPE_CHECKING:
    import sqlalchemy as sa

# Deferred imports: sqlalchemy loads with the first read or bump, as in rollouts.py and audit.py.

__all__ = ["bump", "ensure", "read"]

_TABLE = "mf_serving_generation"
_seeded: set[str] = set()
_lock = threading.Lock()


def ensure(url: str) -> sa.Table:
    """The table in `url`'s database, with its one row there; call it before opening the
    transaction that bumps (creating a table inside another writer's sqlite transaction would
    wait for that writer: itself)."""
    import sqlalchemy as sa

    table, engine = tables_for(url, _declare)
    with _lock:
        if url not in _seeded:
            exists = sa.select(table.c.id).where(table.c.id == 1)
            # IntegrityError: another process seeded it between our read and our insert.
            with contextlib.suppress(sa.exc.IntegrityError), engine.begin() as conn:
                if conn.execute(exists).first() is None:
                    conn.execute(sa.insert(table).values(id=1, generation=0))
            _seeded.add(url)
    return table


def bump(conn: sa.Connection, table: sa.Table) -> None:
    """Add one to the generation inside the caller's transaction (`table` from `ensure`), so
    the move and its signal commit together or not at all."""
    import sqlalchemy as sa

    conn.execute(sa.update(table).where(table.c.id == 1).values(generation=table.c.generation + 1))


def read(url: str) -> int:
    """The generation now: one single-row SELECT."""
    import sqlalchemy as sa

    table = ensure(url)
    _, engine = tables_for(url, _declare)
    with engine.connect() as conn:
        value = conn.execute(sa.select(table.c.generation).where(table.c.id == 1)).scalar()
    return int(value or 0)


def _declare(metadata: sa.MetaData) -> Any:
    import sqlalchemy as sa

    return sa.Table(
        _TABLE,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
    )
