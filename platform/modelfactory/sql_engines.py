"""One SQLAlchemy engine per database URL per process, for the platform's own tables (the
rollouts and the audit trail): sqlite in MODELFACTORY_HOME locally, Postgres in production."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["create_tables", "engine_for"]

_engines: dict[str, Any] = {}
_lock = threading.Lock()


def engine_for(url: str) -> sa.Engine:
    """The process's engine for `url`; sqlite files get WAL so readers (the endpoint polls
    every second) never block a writer, and a writer waits up to 30 s for another."""
    with _lock:
        if url not in _engines:
            _engines[url] = _create(url)
        return _engines[url]


def _create(url: str) -> sa.Engine:
    import sqlalchemy as sa

    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _wal(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    return engine


def create_tables(metadata: sa.MetaData, engine: sa.Engine) -> None:
    """Create the tables that do not exist yet. Two processes starting on a fresh database
    may both find a table missing; the one that loses the race finds it there on a retry."""
    import sqlalchemy as sa

    try:
        metadata.create_all(engine)
    except sa.exc.SQLAlchemyError:
        metadata.create_all(engine)
