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

The warehouse is a store (stores/inference_log.py; stores/inference_reader.py reads it):
the model's DuckDB file locally, which Dagster's runs also open (a flush that finds it
locked tries again on the next tick; the records wait in the spool), or a Snowflake schema
in production. Every function here takes a store, or a DuckDB file's path for short.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from modelfactory.stores.inference_log import (
    LOG_SCHEMA,
    OFFSETS_TABLE,
    Session,
    Warehouse,
    WarehouseBusy,
    add_columns,
    as_store,
    inference_log_table,
)

__all__ = [
    "CaptureFlusher",
    "CaptureFlushers",
    "CaptureSpool",
]

log = logging.getLogger(__name__)

_HOST = socket.gethostname().replace("-", "_")
_SEGMENT_BYTES = 16 * 1024 * 1024
_SEGMENT_SECONDS = 3600.0  # a segment closes within about an hour, however quiet the endpoint
_COLUMN_NAMES = list(LOG_SCHEMA)
_COLUMNS = ", ".join(f"{name} {kind}" for name, kind in LOG_SCHEMA.items())


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
        self._flushed: tuple[Path, int] | None = None  # our open segment, its size when flushed
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
            size = self._open_size(segment)
            if self._unchanged(segment, size):
                continue  # nothing appended since it was flushed: the warehouse stays shut
            written += self._flush_segment(segment)
            if size is not None:
                self._flushed = (segment.path, size)  # read before the flush: it covered that
        self.rows_flushed += written
        return written

    def pending(self) -> bool:
        """Whether a flush would write or finish anything: a folder listing and a `stat`,
        the warehouse shut (what an idle tick costs)."""
        return any(not self._unchanged(s, self._open_size(s)) for s in self._segments())

    def tick(self) -> None:
        """One background round: close a segment that is due, flush what is pending. A busy
        warehouse waits for the next round; any other failure is logged, the records stay."""
        self.spool.rotate_if_due()  # a quiet endpoint's segment still closes, and archives
        try:
            if self.pending():
                self.flush()
        except WarehouseBusy:
            pass
        except Exception:
            log.exception("%s: capture flush failed; records stay in the spool", self.model)

    def _unchanged(self, segment: _Segment, size: int | None) -> bool:
        """Our open segment, empty or no longer than when it was last flushed."""
        return size is not None and (size == 0 or self._flushed == (segment.path, size))

    def _open_size(self, segment: _Segment) -> int | None:
        """The size of our own open segment (None for any other). At rest every model's
        flusher finds it unchanged each tick; a hundred models each opening DuckDB every
        second to learn so cost about a core."""
        if segment.path != self.spool.current or self.spool.closed:
            return None
        try:
            return segment.path.stat().st_size
        except FileNotFoundError:
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

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


class CaptureFlushers:
    """Every model's flusher on one timer thread, and a few threads for the flushes.

    At rest each tick is a folder listing and a `stat` per model, on one thread: a hundred
    models' threads each waking every second cost more than the work. A model with records
    to move is flushed on a small pool, so one slow load (Snowflake) holds back no other
    model, and a flusher never runs twice at once. `stop` waits for the flushes under way,
    then gives each flusher its final flush.
    """

    def __init__(
        self, flushers: Sequence[CaptureFlusher], interval: float, parallel: int = 4
    ) -> None:
        self.flushers = list(flushers)
        self.interval = interval
        self._pool = ThreadPoolExecutor(
            max(1, min(parallel, len(self.flushers))), thread_name_prefix="capture-flush"
        )
        self._running: dict[str, Future] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="capture-ticker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True)
        for flusher in self.flushers:
            flusher.stop(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for flusher in self.flushers:
                running = self._running.get(flusher.model)
                if running is not None and not running.done():
                    continue  # still moving the last round's records
                flusher.spool.rotate_if_due()
                try:
                    due = flusher.pending()
                except Exception:
                    log.exception("%s: could not list the capture spool", flusher.model)
                    continue
                if due:
                    self._running[flusher.model] = self._pool.submit(flusher.tick)


def _ensure_tables(con: Session, table: str, *, upgrade: bool = True) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({_COLUMNS})")
    if upgrade:
        add_columns(con, table)


def _set_offset(con: Session, segment: str, offset: int) -> None:
    # Delete and insert: `INSERT OR REPLACE` and `MERGE` are each one engine's dialect.
    con.execute(f"DELETE FROM {OFFSETS_TABLE} WHERE segment = ?", [segment])
    con.execute(f"INSERT INTO {OFFSETS_TABLE} VALUES (?, ?)", [segment, offset])


def _offset(con: Session, segment: str) -> int:
    row = con.execute(
        f"SELECT offset_bytes FROM {OFFSETS_TABLE} WHERE segment = ?", [segment]
    ).fetchone()
    return int(row[0]) if row else 0
