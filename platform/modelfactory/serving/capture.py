"""Data capture: every answered request lands in the warehouse table `<model>_inference_log`.

Two stages keep capture off the request's critical path and lose nothing:

1. **Spool** — before a response is sent, its record is appended (one `write`, no fsync) to
   a spool file under MODELFACTORY_HOME. The kernel holds it from then on, so killing the
   server cannot lose an answered request.
2. **Flush** — a background thread moves spooled records into the warehouse in batches,
   one row per input row, parsed and exploded by DuckDB itself (no per-row Python). The
   spool offset it has reached commits in the same DuckDB transaction as the rows, so a
   crash never loses or doubles a row. A restarted server starts a new spool segment and
   flushes what the old process left.
3. **Archive** (production) — a segment is closed after 16 MiB or an hour; once all of it is
   in the warehouse it is uploaded to S3 as it was written, then deleted.

The warehouse is a store (log_stores.py): the model's DuckDB file locally, which Dagster's
runs also open (a flush that finds it locked tries again on the next tick; the records wait
in the spool), or a Snowflake schema in production. Every function here takes a store, or a
DuckDB file's path for short.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from modelfactory.errors import LabelsError
from modelfactory.stores.inference_log import (
    ADDED_COLUMNS,
    LOG_SCHEMA,
    OFFSETS_TABLE,
    DuckDBStore,
    InferenceStore,
    Session,
    WarehouseBusy,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CaptureFlusher",
    "CaptureSpool",
    "VersionStats",
    "WarehouseBusy",
    "captured_inputs",
    "count_new",
    "inference_log_table",
    "read_inference_log",
    "read_labelled",
    "read_recent",
    "read_window",
    "version_stats",
]

log = logging.getLogger(__name__)

_HOST = socket.gethostname().replace("-", "_")
_SEGMENT_BYTES = 16 * 1024 * 1024
_SEGMENT_SECONDS = 3600.0  # a segment closes within about an hour, however quiet the endpoint
_COLUMN_NAMES = list(LOG_SCHEMA)
_COLUMNS = ", ".join(f"{name} {kind}" for name, kind in LOG_SCHEMA.items())

Warehouse = InferenceStore | Path  # a store, or a DuckDB file's path


def inference_log_table(model: str) -> str:
    """`<model>_inference_log`; a segment's (`<model>.<segment>`) is `<model>__<segment>_…`."""
    return f"{model.replace('.', '__')}_inference_log"


def as_store(warehouse: Warehouse) -> InferenceStore:
    return DuckDBStore(Path(warehouse)) if isinstance(warehouse, str | Path) else warehouse


class CaptureSpool:
    """Append-only spool segments of one model; `append` is one write to the page cache."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd = -1
        self._size = 0
        self._opened = 0.0
        self.current: Path | None = None
        self._open_segment()

    def append(self, record: bytes) -> None:
        """Write one record (a JSON object, no newline) durably enough to survive a kill."""
        with self._lock:
            os.write(self._fd, record + b"\n")
            self._size += len(record) + 1
            if self._size >= _SEGMENT_BYTES or time.monotonic() - self._opened > _SEGMENT_SECONDS:
                self._open_segment()

    def rotate_if_due(self) -> None:
        """Close the current segment once it is an hour old and holds anything, so a quiet
        endpoint's requests reach the archive too."""
        with self._lock:
            due = time.monotonic() - self._opened > _SEGMENT_SECONDS
            if self._fd >= 0 and self._size and due:
                self._open_segment()

    def close(self) -> None:
        """No more appends: the current segment is complete, and the next flush finishes it."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _open_segment(self) -> None:
        """Segments are named `<ns timestamp>-<host>-<pid>.jsonl`: ordered, and their writer
        known (a server on another host sharing the folder is never taken for dead)."""
        if self._fd >= 0:
            os.close(self._fd)
        self.current = self.directory / f"{time.time_ns():020d}-{_HOST}-{os.getpid()}.jsonl"
        self._fd = os.open(self.current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = 0
        self._opened = time.monotonic()


@dataclass(frozen=True)
class _Segment:
    path: Path
    writer_pid: int

    @property
    def writer_alive(self) -> bool:
        if self.writer_pid == os.getpid():
            return True
        try:
            os.kill(self.writer_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class CaptureFlusher:
    """Moves one model's spooled records into its warehouse table, in the background.

    `archive`, if given, receives each fully flushed segment before it is deleted (resources.
    capture_archive: S3 in production); if it fails, the failure is logged, the segment stays
    and is offered again on the next flush (its rows already in the warehouse, never written
    twice), and the other segments flush as usual.
    """

    def __init__(
        self,
        model: str,
        spool: CaptureSpool,
        warehouse: Warehouse,
        interval: float = 1.0,
        archive: Callable[[Path], object] | None = None,
    ) -> None:
        self.model = model
        self.spool = spool
        self.store = as_store(warehouse)
        self.interval = interval
        self.archive = archive
        self.table = inference_log_table(model)
        self._upgraded = False  # the log's added columns are checked once per flusher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rows_flushed = 0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"capture-{self.model}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread, then flush whatever is left (retrying while the file is busy)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self.flush()
                    return
                except WarehouseBusy:
                    if time.monotonic() > deadline:
                        log.warning("%s: warehouse busy; records stay in the spool", self.model)
                        return
                    time.sleep(0.2)
        finally:
            self.store.close()

    def flush(self) -> int:
        """Flush every complete record the spool holds; returns the rows written."""
        written = 0
        for segment in self._segments():
            written += self._flush_segment(segment)
        self.rows_flushed += written
        return written

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.spool.rotate_if_due()  # a quiet endpoint's segment still closes, and archives
            try:
                self.flush()
            except WarehouseBusy:
                continue
            except Exception:
                log.exception("%s: capture flush failed; records stay in the spool", self.model)

    def _archived(self, path: Path) -> bool:
        """Archive a loaded segment, if there is an archive; False when that failed (the
        segment stays for the next flush and the other segments go on)."""
        if self.archive is None:
            return True
        try:
            self.archive(path)
        except Exception:
            log.exception("%s: archiving %s failed; it stays in the spool", self.model, path.name)
            return False
        return True

    def _segments(self) -> list[_Segment]:
        segments = []
        for path in sorted(self.spool.directory.glob("*.jsonl")):
            _, _, rest = path.stem.partition("-")
            host, _, pid = rest.rpartition("-")
            if host != _HOST or not pid.isdigit():
                continue  # another host's server flushes its own segments
            segment = _Segment(path, int(pid))
            if segment.writer_pid == os.getpid() or not segment.writer_alive:
                segments.append(segment)
        return segments

    def _flush_segment(self, segment: _Segment) -> int:
        # Only our own open segment can still grow; any other is read to its end and removed.
        finished = segment.path != self.spool.current or self.spool.closed
        written = 0
        with self.store.connect() as con:
            _ensure_tables(con, self.table, upgrade=not self._upgraded)
            self._upgraded = True
            offset = _offset(con, segment.path.name)
            try:
                with segment.path.open("rb") as spool_file:
                    spool_file.seek(offset)
                    chunk = spool_file.read()
            except FileNotFoundError:  # another server on this host flushed it meanwhile
                return 0
            complete = chunk[: chunk.rfind(b"\n") + 1]
            if complete:
                con.execute("BEGIN TRANSACTION")
                try:
                    written = self.store.insert_records(con, self.table, complete)
                    con.execute(
                        f"DELETE FROM {OFFSETS_TABLE} WHERE segment = ?", [segment.path.name]
                    )
                    con.execute(
                        f"INSERT INTO {OFFSETS_TABLE} VALUES (?, ?)",
                        [segment.path.name, offset + len(complete)],
                    )
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            if finished:
                # The file goes before its offset, both while we hold the warehouse: no other
                # flusher can then read the file again from offset 0. A dead writer's torn last
                # line was never answered; it goes with the file.
                if not self._archived(segment.path):
                    return written  # kept, whole, for the next flush to archive
                segment.path.unlink(missing_ok=True)
                con.execute(f"DELETE FROM {OFFSETS_TABLE} WHERE segment = ?", [segment.path.name])
        return written


# -- reading, for the canary sensor, drift and tests ----------------------------------


@dataclass(frozen=True)
class VersionStats:
    """What one version did with live traffic since a moment, from captured data."""

    version: str
    role: str
    requests: int
    errors: int
    p95_latency_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def version_stats(warehouse: Warehouse, model: str, since: datetime) -> list[VersionStats]:
    """Requests, errors and p95 latency per (version, role) since `since`."""
    store, table = as_store(warehouse), inference_log_table(model)
    with store.connect(wait=10.0) as con:
        if not store.has_table(con, table):
            return []
        rows = con.execute(
            f"""
            WITH requests AS (
                SELECT request_id, role, any_value(model_version) AS version,
                       max(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS failed,
                       any_value(latency_ms) AS latency_ms
                FROM {table} WHERE received_at >= ? GROUP BY request_id, role
            )
            SELECT version, role, count(*), sum(failed),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
            FROM requests GROUP BY version, role ORDER BY version, role
            """,
            [_naive_utc(since)],
        ).fetchall()
    return [
        VersionStats(str(v), r, int(n), int(e), None if p is None else float(p))
        for v, r, n, e, p in rows
    ]


def read_recent(warehouse: Warehouse, model: str, limit: int) -> pd.DataFrame:
    """The inputs of the latest `limit` answered rows (for a drift report)."""
    import pandas as pd

    store, table = as_store(warehouse), inference_log_table(model)
    with store.connect(wait=10.0) as con:
        if not store.has_table(con, table):
            return pd.DataFrame()
        rows = con.execute(
            f"""SELECT features FROM {table} WHERE status = 'ok' AND role <> 'shadow'
                ORDER BY received_at DESC LIMIT ?""",
            [limit],
        ).fetchall()
    return captured_inputs(features for (features,) in rows)


def count_new(warehouse: Warehouse, model: str, *, after: datetime | None, limit: int) -> int:
    """How many answered rows were received after `after`, counting to `limit` at most: the
    drift sensor's look before it reads a window, so a tick that finds too few new rows
    reads no inputs (only the newest rows' receive times)."""
    store, table = as_store(warehouse), inference_log_table(model)
    since = _naive_utc(after or datetime(1970, 1, 1, tzinfo=UTC))
    with store.connect(wait=10.0) as con:
        if not store.has_table(con, table):
            return 0
        (count,) = con.execute(
            f"""SELECT count(*) FROM (SELECT 1 FROM {table}
                WHERE status = 'ok' AND role <> 'shadow' AND received_at > ? LIMIT ?)""",
            [since, limit],
        ).fetchone()
    return int(count)


def read_window(
    warehouse: Warehouse, model: str, *, after: datetime | None, limit: int
) -> tuple[pd.DataFrame, datetime | None, datetime | None]:
    """The inputs of up to `limit` answered rows received after `after`, oldest first, and
    the first and last receive times of that window (for a drift check and its cursor).

    Shadow scores are left out: they repeat inputs that the stable version already answered.
    """
    import pandas as pd

    store, table = as_store(warehouse), inference_log_table(model)
    since = _naive_utc(after or datetime(1970, 1, 1, tzinfo=UTC))
    with store.connect(wait=10.0) as con:
        if not store.has_table(con, table):
            return pd.DataFrame(), None, None
        rows = con.execute(
            f"""SELECT received_at, features FROM {table}
                WHERE status = 'ok' AND role <> 'shadow' AND received_at > ?
                ORDER BY received_at, request_id, row_index LIMIT ?""",
            [since, limit],
        ).fetchall()
    if not rows:
        return pd.DataFrame(), None, None
    frame = captured_inputs(features for _, features in rows)
    first, last = (rows[0][0].replace(tzinfo=UTC), rows[-1][0].replace(tzinfo=UTC))
    return frame, first, last


def captured_inputs(features: Iterable[str]) -> pd.DataFrame:
    """Captured input rows (JSON text, one per row) as a frame of the model's input columns."""
    import pandas as pd

    return pd.DataFrame.from_records([json.loads(row) for row in features])


def read_inference_log(warehouse: Warehouse, model: str) -> pd.DataFrame:
    """The whole inference log of a model (empty if nothing was captured yet)."""
    import pandas as pd

    store, table = as_store(warehouse), inference_log_table(model)
    with store.connect(wait=10.0) as con:
        if not store.has_table(con, table):
            return pd.DataFrame(columns=_COLUMN_NAMES)
        cursor = con.execute(f"SELECT * FROM {table} ORDER BY received_at, row_index")
        return store.frame(cursor)


def read_labelled(
    warehouse: Warehouse,
    model: str,
    labels: list[Path],
    *,
    target: str,
    limit: int | None = None,
    since: datetime | None = None,
) -> pd.DataFrame:
    """Answered rows joined with the labels that arrived for them later, newest first.

    `labels` are CSV or Parquet files with `request_id`, `row_index` and the target column;
    when two files label the same row, the later file (by name) wins, so a correction is a
    new file. Only rows answered at or after `since`, and at most `limit` rows per model
    version (the newest), are returned.

    `prediction` is the answer as the model gave it (a class label keeps its type: str, int
    or bool), `probabilities` a classifier's probability of each class (a dict, in the
    order of its classes) or None; `label` is as the file holds it (live.py compares it as
    the model's label type), `label_file` the file it came from.
    """
    import pandas as pd

    columns = [
        "model_version",
        "role",
        "received_at",
        "features",
        "prediction",
        "score",
        "label",
        "output",
        "probabilities",
        "label_file",
    ]
    empty = pd.DataFrame(columns=[c for c in columns if c != "output"])
    store, table = as_store(warehouse), inference_log_table(model)
    files = [f for f in labels if f.suffix.lower() in {".csv", ".parquet"}]
    if not files:
        return empty
    with store.connect(wait=10.0) as con:
        if not store.has_table(con, table):
            return empty
        try:
            _add_columns(con, table)
            relation, bound = store.label_relation(con, files, target)
            joined = _join_labels(store, con, table, relation, bound, columns, limit, since)
            return _answered_as_given(joined)
        except store.label_errors as exc:
            problem = str(exc).strip().splitlines()[0]
            raise LabelsError(
                f"{model}: cannot read the label files in {labels[0].parent} ({problem}); each "
                f"needs the columns request_id, row_index and {target}"
            ) from None


def _join_labels(
    store: InferenceStore,
    con: Session,
    table: str,
    relation: str,
    bound: list,
    columns: list[str],
    limit: int | None,
    since: datetime | None,
) -> pd.DataFrame:
    answered_since, newest = "", ""
    parameters = list(bound)
    if since is not None:
        answered_since = "AND log.received_at >= ?"
        parameters.append(_naive_utc(since))
    if limit is not None:
        newest = "WHERE recency <= ?"
        parameters.append(limit)
    cursor = con.execute(
        f"""
            WITH labels AS (
                SELECT request_id, row_index, label, filename FROM ({relation})
                QUALIFY row_number() OVER (
                    PARTITION BY request_id, row_index ORDER BY filename DESC) = 1
            ), joined AS (
                SELECT log.model_version, log.role, log.received_at, log.features,
                       log.prediction, log.score, labels.label, log.output,
                       log.probabilities, labels.filename AS label_file,
                       row_number() OVER (
                           PARTITION BY log.model_version ORDER BY log.received_at DESC
                       ) AS recency
                FROM {table} AS log
                JOIN labels ON log.request_id = labels.request_id
                           AND log.row_index = labels.row_index
                WHERE log.status = 'ok' AND labels.label IS NOT NULL {answered_since}
            )
            SELECT {", ".join(columns)} FROM joined {newest} ORDER BY received_at DESC
            """,
        parameters,
    )
    return store.frame(cursor)


def _naive_utc(moment: datetime) -> datetime:
    """Both engines store received_at as a naive UTC timestamp."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def _answered_as_given(joined: pd.DataFrame) -> pd.DataFrame:
    """The prediction as answered (from its JSON, where the row has one: rows logged before
    it was kept have only the number) and the probabilities as dicts; `output` dropped."""
    import pandas as pd

    outputs = joined.pop("output")
    answered = [
        json.loads(text) if isinstance(text, str) else number
        for text, number in zip(outputs, joined["prediction"], strict=True)
    ]
    joined["prediction"] = pd.Series(answered, index=joined.index, dtype=None)
    joined["probabilities"] = [
        json.loads(text) if isinstance(text, str) else None for text in joined["probabilities"]
    ]
    # A store that keeps labels as text (Snowflake's upload) hands numbers back as numbers;
    # class labels that are words stay text.
    with contextlib.suppress(TypeError, ValueError):
        joined["label"] = pd.to_numeric(joined["label"])
    return joined


def _ensure_tables(con: Session, table: str, *, upgrade: bool = True) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({_COLUMNS})")
    if upgrade:
        _add_columns(con, table)


def _add_columns(con: Session, table: str) -> None:
    """The columns added to the log since it was first made, on a log made before them."""
    for name in ADDED_COLUMNS:
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {LOG_SCHEMA[name]}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} "
        "(segment VARCHAR PRIMARY KEY, offset_bytes BIGINT)"
    )


def _set_offset(con: Session, segment: str, offset: int) -> None:
    # Delete and insert: `INSERT OR REPLACE` and `MERGE` are each one engine's dialect.
    con.execute(f"DELETE FROM {OFFSETS_TABLE} WHERE segment = ?", [segment])
    con.execute(f"INSERT INTO {OFFSETS_TABLE} VALUES (?, ?)", [segment, offset])


def _offset(con: Session, segment: str) -> int:
    row = con.execute(
        f"SELECT offset_bytes FROM {OFFSETS_TABLE} WHERE segment = ?", [segment]
    ).fetchone()
    return int(row[0]) if row else 0
