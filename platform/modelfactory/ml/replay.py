"""Replay before promotion: the candidate on the last days the model scored, against what
was served those days.

One holdout is one period, and a candidate can beat the champion on it by luck. Replay takes
the last `days` days whose batch scores are stored (`<model>/predictions`, by day) and whose
outcome is known, inside the holdout so the candidate never trained on them; it scores the
candidate on each day's rows and counts the days it does at least as well as the version
that actually served them. The gate asks for `min_share` of such days: an offline shadow test.

Plain functions over DataFrames, like the rest of the gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelfactory.ml.evaluation import Metric, improvement

if TYPE_CHECKING:
    import pandas as pd

# Deferred imports: pandas loads with the first replay; lifecycle's verdict imports this module
# for its types.

__all__ = ["ReplayResult", "replay", "served_with_outcomes"]

SERVED, CANDIDATE, TRUTH = "served_prediction", "candidate_prediction", "y_true"
SERVED_SCORE, CANDIDATE_SCORE = "served_score", "candidate_score"  # classifiers' probabilities


@dataclass(frozen=True)
class ReplayResult:
    """Per replayed day: rows, the version that served, both metrics and who won."""

    table: pd.DataFrame
    metric: str
    min_share: float
    scored_rows: int = 0  # stored scores of the holdout's period, joined or not

    @property
    def days(self) -> int:
        return len(self.table)

    @property
    def wins(self) -> int:
        return int(self.table["candidate_won"].sum()) if self.days else 0

    @property
    def passed(self) -> bool:
        """Nothing to replay yet (no stored day in the holdout) is never a failure."""
        return self.days == 0 or self.wins >= math.ceil(self.min_share * self.days - 1e-9)

    def describe(self) -> str:
        if not self.days and self.scored_rows:
            return (
                f"ok: none of the {self.scored_rows} rows scored in the holdout's period "
                "matched a holdout row (did the inputs change?), nothing to replay"
            )
        if not self.days:
            return "ok: replay found no scored day in the holdout yet, nothing to replay"
        verb = "ok" if self.passed else "replay"
        return (
            f"{verb}: candidate at least as good as what served on {self.wins}/{self.days} "
            f"replayed days (needs {self.min_share:.0%}, {self.metric})"
        )


def served_with_outcomes(
    served: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    target: str,
    candidate: Any,
    candidate_score: Any | None,
    keys: list[str],
) -> pd.DataFrame:
    """Stored predictions joined with the holdout rows they were made for (by `keys`: the
    time column and the inputs), with the truth and the candidate's prediction beside them."""
    import pandas as pd

    if served.empty or holdout.empty:
        return pd.DataFrame(columns=[*keys, "model_version", SERVED, TRUTH, CANDIDATE])
    known = holdout.assign(**{CANDIDATE: candidate}).rename(columns={target: TRUTH})
    if candidate_score is not None:
        known[CANDIDATE_SCORE] = candidate_score
    renamed = {"prediction": SERVED, "score": SERVED_SCORE}
    stored = served[[c for c in [*keys, "model_version", *renamed] if c in served.columns]]
    truth = [c for c in (TRUTH, CANDIDATE, CANDIDATE_SCORE) if c in known.columns]
    joined = stored.rename(columns=renamed).merge(known[[*keys, *truth]], on=keys, how="inner")
    return joined.drop_duplicates(subset=keys)


def replay(
    joined: pd.DataFrame,
    *,
    time_column: str,
    metric: Metric,
    days: int,
    min_share: float,
    scored_rows: int = 0,
    classes: list[Any] | None = None,
) -> ReplayResult:
    """Judge the candidate on the last `days` days of `joined` (see served_with_outcomes);
    `scored_rows` (the stored scores before the join) tells "none matched" from "none yet";
    `classes` (a classifier's classes_) tells the positive class on a day with one class."""
    import pandas as pd

    rows = []
    if not joined.empty:
        by_day = joined.assign(day=pd.to_datetime(joined[time_column]).dt.date)
        for day in sorted(by_day["day"].unique())[-days:]:
            rows.append(_one_day(by_day[by_day["day"] == day], day, metric, classes))
    columns = ["day", "rows", "served_version", f"served_{metric.name}"]
    columns += [f"candidate_{metric.name}", "candidate_won"]
    return ReplayResult(pd.DataFrame(rows, columns=columns), metric.name, min_share, scored_rows)


def _one_day(
    rows: pd.DataFrame, day: Any, metric: Metric, classes: list[Any] | None
) -> dict[str, Any]:
    # Stored batch scores keep the positive class's probability only: a multiclass model's
    # score metrics are NaN here, and such a day counts for the candidate (below).
    served = metric.score(rows[TRUTH], rows[SERVED], rows.get(SERVED_SCORE), classes)
    candidate = metric.score(rows[TRUTH], rows[CANDIDATE], rows.get(CANDIDATE_SCORE), classes)
    versions = sorted(rows["model_version"].astype(str).unique())
    return {
        "day": str(day),
        "rows": len(rows),
        "served_version": ", ".join(versions),
        f"served_{metric.name}": served,
        f"candidate_{metric.name}": candidate,
        # A metric undefined that day (one class only, for a score metric) counts as a win:
        # the day says nothing against the candidate.
        "candidate_won": math.isnan(served)
        or math.isnan(candidate)
        or improvement(candidate, served, metric.direction) >= 0,
    }
