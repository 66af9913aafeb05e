"""Plain DataFrame helpers the asset factory uses: schema validation, holdout split, hashing.

No Dagster here: these are the data rules, testable on their own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelfactory.errors import ProjectError

if TYPE_CHECKING:
    import pandas as pd

    from modelfactory.project.spec import ModelSpec

# Deferred imports: pandas, numpy, pandera and scikit-learn load on the first frame validated or
# split: the reports, stores and CLI import this module for its hashing and names.

__all__ = [
    "SPLIT_COLUMN",
    "ValidationOutcome",
    "content_hash",
    "inputs",
    "split_frame",
    "validate_frame",
    "xy",
]

SPLIT_COLUMN = "_split"


@dataclass(frozen=True)
class ValidationOutcome:
    """A pandera verdict: the validated (coerced) frame, or the failure cases."""

    frame: pd.DataFrame
    failures: pd.DataFrame | None

    @property
    def passed(self) -> bool:
        return self.failures is None

    def describe(self, limit: int = 5) -> str:
        if self.failures is None:
            return "all rows pass"
        cases = self.failures.head(limit)
        parts = [
            f"{row.get('column') or 'frame'}: {row.get('check')} (value {row.get('failure_case')!r}"
            + (f", row {int(row['index'])}" if _is_number(row.get("index")) else "")
            + ")"
            for row in cases.to_dict("records")
        ]
        more = len(self.failures) - len(cases)
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def validate_frame(schema: Any, frame: Any, *, what: str) -> ValidationOutcome:
    """Validate lazily (every failure, not just the first) with a pandera schema."""
    import pandas as pd
    import pandera.errors

    if not isinstance(frame, pd.DataFrame):
        raise ProjectError(f"{what} must return a pandas DataFrame, got {type(frame).__name__}")
    try:
        return ValidationOutcome(schema.validate(frame, lazy=True), None)
    except pandera.errors.SchemaErrors as exc:
        return ValidationOutcome(frame, exc.failure_cases.reset_index(drop=True))


def content_hash(frame: pd.DataFrame) -> str:
    """A stable fingerprint of a frame's columns and values, recorded with every candidate."""
    import pandas as pd

    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def split_frame(features: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """Mark each row `train` or `test` in a SPLIT_COLUMN.

    With `split.by` the latest test_size share of time becomes the holdout (no peeking into
    the future); otherwise a seeded random split, stratified for classification.
    """
    import numpy as np
    from sklearn.model_selection import train_test_split

    frame = features.reset_index(drop=True)
    if spec.split.by:
        column = _require(frame, spec.split.by, "split.by")
        cutoff = column.quantile(1 - spec.split.test_size, interpolation="higher")
        is_test = (column >= cutoff).to_numpy()
        if is_test.all() or not is_test.any():
            raise ProjectError(
                f"{spec.name}: split.by {spec.split.by!r} has too few distinct values "
                "to hold out the latest rows"
            )
    else:
        stratify = frame[spec.target] if spec.task == "classification" else None
        _, test_index = train_test_split(
            frame.index,
            test_size=spec.split.test_size,
            random_state=spec.split.seed,
            stratify=stratify,
        )
        is_test = np.zeros(len(frame), dtype=bool)
        is_test[test_index] = True
    return frame.assign(**{SPLIT_COLUMN: np.where(is_test, "test", "train")})


def xy(split: pd.DataFrame, spec: ModelSpec, part: str) -> tuple[pd.DataFrame, pd.Series]:
    """Model inputs and target of one part of the split.

    The inputs are every feature column except the target, the split marker and the time
    column (time orders the holdout; it is not a feature).
    """
    rows = split[split[SPLIT_COLUMN] == part].reset_index(drop=True)
    return inputs(rows, spec), _require(rows, spec.target, "target")


def inputs(frame: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """The model's input columns of a features (or split) frame: all but the target, the
    split marker and the time column. Rows to score in batch need no target."""
    dropped = [spec.target, SPLIT_COLUMN] + ([spec.split.by] if spec.split.by else [])
    return frame.drop(columns=[c for c in dropped if c in frame.columns])


def _require(frame: pd.DataFrame, column: str, field: str) -> pd.Series:
    if column not in frame.columns:
        raise ProjectError(
            f"model.yaml {field} names column {column!r}, but build_features returned only "
            f"{', '.join(map(str, frame.columns))}"
        )
    return frame[column]


def _is_number(value: Any) -> bool:
    try:
        return value is not None and float(value) == float(value)
    except (TypeError, ValueError):
        return False
