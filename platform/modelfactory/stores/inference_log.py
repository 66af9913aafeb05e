"""Where the inference log lives: a DuckDB file locally, a Snowflake schema in production.

serving/capture.py writes the log and stores/inference_reader.py reads it through one of
these stores, with SQL both engines accept (qmark parameters, unquoted lower-case names,
`PERCENTILE_CONT ... WITHIN GROUP`), so the queries behind the canary, the drift sensor and
the live metrics are written once.
A store differs only where the engines do: how a connection is opened, how a batch of
spooled records is loaded (DuckDB parses the JSON itself; Snowflake takes a DataFrame
through `write_pandas`), and how label files become a relation to join.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from dagster_snowflake import SnowflakeResource

# Deferred imports: duckdb, pandas and the Snowflake connector load with the first write or read
# of a log: the endpoint imports this module at start, and only one of the two stores is in use.

__all__ = [
    "DuckDBStore",
    "InferenceStore",
    "SnowflakeStore",
    "Warehouse",
    "WarehouseBusy",
    "add_columns",
    "as_store",
    "inference_log_table",
]

# The inference log's columns, in both engines' common SQL types.
LOG_SCHEMA = {
    "request_id": "VARCHAR NOT NULL",
    "role": "VARCHAR NOT NULL",  # stable | canary | shadow
    "row_index": "INTEGER NOT NULL",
    "received_at": "TIMESTAMP NOT NULL",  # UTC
    "model_version": "VARCHAR NOT NULL",
    "status": "VARCHAR NOT NULL",  # ok | error
    "error": "VARCHAR",
    "latency_ms": "DOUBLE",
    "features": "VARCHAR",  # the input row as JSON
    "prediction": "DOUBLE",  # the answer as a number, NULL for a label that is not one
    "score": "DOUBLE",  # probability of the positive class, for classifiers
    # Added later (ADDED_COLUMNS): the answer as JSON, so a label keeps its type ("Adelie",
    # true, 1), and a classifier's probability of each class as a JSON object.
    "output": "VARCHAR",
    "probabilities": "VARCHAR",
}
ADDED_COLUMNS = ("output", "probabilities")  # added to logs created before them
OFFSETS_TABLE = "mf_capture_offsets"

# DuckDB refuses a second connection to a file from the same process unless its settings
# match, so every connection to a warehouse file (Dagster's IO manager, the endpoint's
# capture) uses these.
WAREHOUSE_CONNECTION_CONFIG = {"custom_user_agent": "modelfactory"}


class WarehouseBusy(Exception):
    """Another process holds the warehouse file; try again later."""


class Session(Protocol):
    """A connection that runs one statement with qmark parameters and returns a cursor."""

    def execute(self, sql: str, parameters: list[Any] | None = None) -> Any: ...


class InferenceStore(Protocol):
    """What the capture and its readers need from the engine that holds the inference log."""

    label_errors: tuple[type[Exception], ...]

    def connect(self, wait: float = 0.0) -> contextlib.AbstractContextManager[Session]: ...

    def close(self) -> None:
        """Release whatever the store keeps open between uses."""

    def has_table(self, session: Session, table: str) -> bool: ...

    def change_token(self) -> str | None:
        """A token that changes whenever the store is written to, read without opening it,
        or None where there is none: a sensor that finds the same token as on its last
        tick knows nothing arrived without a query."""
        ...

    def table(self, name: str) -> str:
        """How SQL names a table of the model's warehouse (schema-qualified where needed)."""
        ...

    def insert_records(self, session: Session, table: str, records: bytes) -> int: ...

    def frame(self, cursor: Any) -> pd.DataFrame: ...

    def label_relation(
        self, session: Session, files: list[Path], target: str
    ) -> tuple[str, list[Any]]: ...


# -- DuckDB (local profile) ------------------------------------------------------------


@dataclass(frozen=True)
class DuckDBStore:
    """The log in a model's DuckDB file, which Dagster's runs also open (one writer at a
    time: a busy file raises WarehouseBusy and the records wait in the spool)."""

    path: Path
    schema: str = ""  # the model's schema in the file, where Dagster's IO manager writes

    @property
    def label_errors(self) -> tuple[type[Exception], ...]:
        import duckdb

        return (duckdb.Error,)

    @contextlib.contextmanager
    def connect(self, wait: float = 0.0) -> Iterator[Session]:
        # The segments of a model share its file: their flushers take turns in this process
        # (DuckDB would fail one of two concurrent writers on a write-write conflict).
        with _file_lock(self.path), self._connect(wait) as con:
            yield con

    @contextlib.contextmanager
    def _connect(self, wait: float) -> Iterator[Session]:
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        while True:
            try:
                con = duckdb.connect(str(self.path), config=WAREHOUSE_CONNECTION_CONFIG)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(str(exc)) from None
                time.sleep(0.1)
        try:
            con.execute("SET threads = 1")  # leave the other cores to the requests
            yield con
        finally:
            con.close()

    def close(self) -> None:
        """Nothing is kept open: DuckDB's file lock must be free between flushes."""

    def change_token(self) -> str | None:
        """The size and modification time of the file and its write-ahead log: a commit
        changes one of them. Opening the file costs ~16 ms of CPU; a stat, microseconds."""
        parts = []
        for path in (self.path, self.path.with_name(f"{self.path.name}.wal")):
            try:
                found = path.stat()
            except FileNotFoundError:
                parts.append("-")
            else:
                parts.append(f"{found.st_size}:{found.st_mtime_ns}")
        return "/".join(parts)

    def has_table(self, session: Session, table: str) -> bool:
        query = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
        return bool(session.execute(query, [table]).fetchone()[0])

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def insert_records(self, session: Session, table: str, records: bytes) -> int:
        # DuckDB parses and explodes the records itself: no per-row Python, and the GIL
        # stays free for the requests being answered meanwhile.
        staged = self.path.parent / f".flushing-{time.time_ns()}.tmp"
        staged.write_bytes(records)
        try:
            return session.execute(
                _DUCKDB_INSERT.replace("{table}", table), [str(staged)]
            ).fetchone()[0]
        finally:
            staged.unlink(missing_ok=True)

    def frame(self, cursor: Any) -> pd.DataFrame:
        return cursor.df()

    def label_relation(
        self, session: Session, files: list[Path], target: str
    ) -> tuple[str, list[Any]]:
        reads, bound = [], []
        csv = [str(f) for f in files if f.suffix.lower() == ".csv"]
        parquet = [str(f) for f in files if f.suffix.lower() == ".parquet"]
        if csv:
            reads.append(
                "SELECT * FROM read_csv(?, union_by_name=true, filename=true, "
                "types={'request_id': 'VARCHAR', 'row_index': 'INTEGER'})"
            )
            bound.append(csv)
        if parquet:
            reads.append("SELECT * FROM read_parquet(?, union_by_name=true, filename=true)")
            bound.append(parquet)
        union = " UNION ALL BY NAME ".join(reads)
        relation = f'SELECT request_id, row_index, "{target}" AS label, filename FROM ({union})'
        return relation, bound


_FILE_LOCKS: dict[Path, threading.RLock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.RLock:
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(path.resolve(), threading.RLock())


_RECORD_COLUMNS = (
    "{request_id: 'VARCHAR', received_at: 'VARCHAR', model_version: 'VARCHAR', role: 'VARCHAR', "
    "status: 'VARCHAR', error: 'VARCHAR', latency_ms: 'DOUBLE', inputs: 'JSON[]', "
    "outputs: 'JSON[]', scores: 'DOUBLE[]', row_indices: 'INTEGER[]', "
    "probabilities: 'JSON[]'}"
)
# One record per request -> one table row per input row; the lists unnest side by side. A
# segment's record holds only its rows of the request, with their places in it (row_indices).
_DUCKDB_INSERT = (
    "INSERT INTO {table} "
    "SELECT request_id, role, "
    "unnest(coalesce(row_indices, CAST(range(0, len(inputs)) AS INTEGER[]))), "
    "CAST(received_at AS TIMESTAMP), "
    "model_version, status, error, latency_ms, CAST(unnest(inputs) AS VARCHAR), "
    "TRY_CAST(unnest(outputs) AS DOUBLE), unnest(scores), "
    "CAST(unnest(outputs) AS VARCHAR), CAST(unnest(probabilities) AS VARCHAR) "
    "FROM read_json(?, format = 'newline_delimited', ignore_errors = true, "
    f"columns = {_RECORD_COLUMNS})"
)


# -- Snowflake (production profile) ----------------------------------------------------


@dataclass
class SnowflakeStore:
    """The log in Snowflake, in the model's schema, through dagster-snowflake's resource.

    Readers (sensors, assets) open a connection per use. The endpoint's flusher passes
    `keep_open`: it flushes every few seconds for the server's lifetime, and a new Snowflake
    session each time would cost a login per flush. A kept session that fails is dropped;
    the next use logs in again.
    """

    resource: SnowflakeResource
    schema: str
    keep_open: bool = False
    _kept: _SnowflakeSession | None = field(default=None, init=False, repr=False)
    _closer: contextlib.ExitStack | None = field(default=None, init=False, repr=False)
    _schema_ready: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def label_errors(self) -> tuple[type[Exception], ...]:
        import snowflake.connector.errors

        return (snowflake.connector.errors.Error, ValueError, KeyError, OSError)

    @contextlib.contextmanager
    def connect(self, wait: float = 0.0) -> Iterator[Session]:
        if not self.keep_open:
            with self.resource.get_connection() as con:
                yield self._prepare(con)
            return
        with self._lock:
            if self._kept is None:
                closer = contextlib.ExitStack()
                self._kept = self._prepare(closer.enter_context(self.resource.get_connection()))
                self._closer = closer
            try:
                yield self._kept
            except BaseException:
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    def change_token(self) -> str | None:
        """None: Snowflake has no change token this store reads (each check is a query)."""
        return None

    def _prepare(self, connection: Any) -> _SnowflakeSession:
        session = _SnowflakeSession(connection)
        if not self._schema_ready:
            session.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            self._schema_ready = True
        session.execute(f"USE SCHEMA {self.schema}")
        return session

    def _drop(self) -> None:
        closer, self._closer, self._kept = self._closer, None, None
        if closer is not None:
            with contextlib.suppress(Exception):  # a dead session cannot even say goodbye
                closer.close()

    def has_table(self, session: Session, table: str) -> bool:
        query = (
            "SELECT count(*) FROM information_schema.tables "
            "WHERE lower(table_name) = lower(?) AND lower(table_schema) = lower(?)"
        )
        return bool(session.execute(query, [table, self.schema]).fetchone()[0])

    def table(self, name: str) -> str:
        return name  # connect() has made the model's schema the current one

    def insert_records(self, session: Session, table: str, records: bytes) -> int:
        rows = exploded_records(records)
        if rows.empty:
            return 0
        return _write_pandas(session, rows, table)

    def frame(self, cursor: Any) -> pd.DataFrame:
        frame = cursor.fetch_pandas_all()
        return frame.rename(columns=str.lower)

    def label_relation(
        self, session: Session, files: list[Path], target: str
    ) -> tuple[str, list[Any]]:
        """Label files are read here and uploaded to a scratch table the join reads."""
        import pandas as pd

        frames = []
        for path in files:
            if path.suffix.lower() == ".parquet":
                labels = pd.read_parquet(path)
            else:
                labels = pd.read_csv(path, dtype={"request_id": str})
            if target not in labels.columns:
                continue
            frames.append(
                pd.DataFrame(
                    {
                        "request_id": labels["request_id"].astype(str),
                        "row_index": labels["row_index"].astype("int64"),
                        "label": labels[target].map(_text),  # numbers or class labels
                        "filename": str(path),
                    }
                )
            )
        if not frames:
            raise ValueError(f"no label file has the column {target}")
        session.execute(f"CREATE OR REPLACE TABLE {_LABEL_TABLE} {_LABEL_COLUMNS}")
        _write_pandas(session, pd.concat(frames, ignore_index=True), _LABEL_TABLE)
        return f"SELECT request_id, row_index, label, filename FROM {_LABEL_TABLE}", []


_LABEL_TABLE = "mf_label_upload"
_LABEL_COLUMNS = "(request_id VARCHAR, row_index INTEGER, label VARCHAR, filename VARCHAR)"


def _text(value: Any) -> str | None:
    """A label as text (live.py reads it back as the model's label type); missing is None."""
    import pandas as pd

    return None if pd.isna(value) else str(value)


class _SnowflakeSession:
    """A Snowflake connection that answers `execute` with a cursor, as DuckDB's does."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: list[Any] | None = None) -> Any:
        return self.connection.cursor().execute(sql, parameters)


def _write_pandas(session: Session, frame: pd.DataFrame, table: str) -> int:
    from snowflake.connector.pandas_tools import write_pandas

    connection = session.connection  # type: ignore[attr-defined]
    ok, _, rows, _ = write_pandas(connection, frame, table.upper(), quote_identifiers=False)
    if not ok:
        raise RuntimeError(f"Snowflake refused the load into {table}")
    return int(rows)


def exploded_records(records: bytes) -> pd.DataFrame:
    """Spooled request records (JSON lines) as inference-log rows, one per input row;
    a torn or unparsable line is skipped, as DuckDB's `ignore_errors` does."""
    import pandas as pd

    rows = []
    for line in records.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        outputs, scores = record.get("outputs") or [], record.get("scores") or []
        probabilities = record.get("probabilities") or []
        inputs = record.get("inputs") or []
        places = record.get("row_indices") or range(len(inputs))
        for index, (features, place) in enumerate(zip(inputs, places, strict=False)):
            rows.append(
                {
                    "request_id": record["request_id"],
                    "role": record["role"],
                    "row_index": place,
                    "received_at": pd.Timestamp(record["received_at"]),  # naive UTC
                    "model_version": record["model_version"],
                    "status": record["status"],
                    "error": record.get("error"),
                    "latency_ms": record.get("latency_ms"),
                    "features": json.dumps(features),
                    "prediction": _number(outputs[index] if index < len(outputs) else None),
                    "score": scores[index] if index < len(scores) else None,
                    "output": json.dumps(outputs[index]) if index < len(outputs) else None,
                    "probabilities": json.dumps(probabilities[index])
                    if index < len(probabilities)
                    else None,
                }
            )
    return pd.DataFrame(rows, columns=list(LOG_SCHEMA))


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


Warehouse = InferenceStore | Path  # a store, or a DuckDB file's path


def inference_log_table(model: str) -> str:
    """`<model>_inference_log`; a segment's (`<model>.<segment>`) is `<model>__<segment>_…`."""
    return f"{model.replace('.', '__')}_inference_log"


def as_store(warehouse: Warehouse) -> InferenceStore:
    return DuckDBStore(Path(warehouse)) if isinstance(warehouse, str | Path) else warehouse


def add_columns(con: Session, table: str) -> None:
    """The columns added to the log since it was first made, on a log made before them."""
    for name in ADDED_COLUMNS:
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {LOG_SCHEMA[name]}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} "
        "(segment VARCHAR PRIMARY KEY, offset_bytes BIGINT)"
    )
