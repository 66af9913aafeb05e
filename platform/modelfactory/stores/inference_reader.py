"""Reading the inference log: recent requests, a window of them, labelled rows, and each
version's live traffic, for the canary judge, the drift and live-metric sensors and assets.

serving/capture.py writes the log (spool, then flush); this module only reads it, so the
layers that judge what was served need nothing of the endpoint.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from modelfactory.errors import LabelsError
from modelfactory.stores.inference_log import (
    LOG_SCHEMA,
    InferenceStore,
    Session,
    Warehouse,
    add_columns,
    as_store,
    inference_log_table,
)

if TYPE_CHECKING:
    import pandas as pd

# Deferred imports: pandas loads with the first rows read: the canary judge imports this module,
# and most ticks only count new rows.

__all__ = [
    "VersionStats",
    "captured_inputs",
    "count_new",
    "read_inference_log",
    "read_labelled",
    "read_recent",
    "read_window",
    "version_stats",
]

_COLUMN_NAMES = list(LOG_SCHEMA)


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
            add_columns(con, table)
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
