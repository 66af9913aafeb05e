"""One SQLAlchemy engine per database URL per process, for the platform's own tables (the
rollouts and the audit trail): sqlite in MODELFACTORY_HOME locally, Postgres in production."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import sqlalchemy as sa

# Deferred imports: sqlalchemy loads with the first engine asked for.

T = TypeVar("T")

__all__ = ["create_tables", "engine_for", "tables_for"]

_engines: dict[str, Any] = {}
_lock = threading.Lock()
_tables: dict[tuple[str, Callable[..., Any]], Any] = {}
_tables_lock = threading.Lock()


def tables_for(url: str, define: Callable[[sa.MetaData], T]) -> tuple[T, sa.Engine]:
    """The tables `define` declares on a fresh MetaData, created in `url`'s database on
    first use in this process, with the engine for that database."""
    with _tables_lock:
        if (url, define) not in _tables:
            import sqlalchemy as sa

            metadata = sa.MetaData()
            declared = define(metadata)
            engine = engine_for(url)
            create_tables(metadata, engine)
            _tables[(url, define)] = (declared, engine)
        return _tables[(url, define)]


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
