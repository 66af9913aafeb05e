"""Synthetic daily sales with known coefficients, so tests can check the model recovers them.

units_sold = BASE[marketplace] + price * COEFFICIENTS["price"] + promo * COEFFICIENTS["promo"]
             + temperature * COEFFICIENTS["temperature"] + is_weekend * COEFFICIENTS["is_weekend"]
             + Normal(0, NOISE_SD)

`drift` shifts prices and temperatures (covariate drift) for monitoring to notice; `concept`
changes how price sells (concept drift), which only retraining fixes. `only` limits both to
some marketplaces, so one segment's world changes while the others' stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MARKETPLACES = ("uk", "de", "us")
BASE = {"uk": 40.0, "de": 55.0, "us": 70.0}
COEFFICIENTS = {"price": -2.0, "promo": 8.0, "temperature": 0.5, "is_weekend": 6.0}
NOISE_SD = 3.0


def simulate(
    n_days: int = 120,
    n_products: int = 20,
    seed: int = 0,
    start: str = "2026-01-01",
    drift: float = 0.0,
    concept: float = 0.0,
    only: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per day, product and marketplace; `drift` and `concept` apply to the
    marketplaces in `only` (default: all)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_days, freq="D")
    index = pd.MultiIndex.from_product(
        [dates, [f"p{i:03d}" for i in range(n_products)], MARKETPLACES],
        names=["date", "product_id", "marketplace"],
    )
    frame = index.to_frame(index=False)
    n = len(frame)
    touched = frame["marketplace"].isin(only if only is not None else MARKETPLACES).to_numpy()
    drift_by_row, concept_by_row = drift * touched, concept * touched
    day_of_year = frame["date"].dt.dayofyear.to_numpy()
    frame["price"] = np.round(rng.uniform(5.0, 15.0, n) * (1 + drift_by_row), 2)
    frame["promo"] = (rng.random(n) < 0.2).astype(int)
    frame["temperature"] = np.round(
        12 + 8 * np.sin(2 * np.pi * day_of_year / 365) + 5 * drift_by_row + rng.normal(0, 3, n),
        1,
    )
    is_weekend = (frame["date"].dt.dayofweek >= 5).astype(int)
    units = (
        frame["marketplace"].map(BASE).to_numpy()
        + frame["price"] * (COEFFICIENTS["price"] * (1 + concept_by_row))
        + frame["promo"] * COEFFICIENTS["promo"]
        + frame["temperature"] * COEFFICIENTS["temperature"]
        + is_weekend * COEFFICIENTS["is_weekend"]
        + rng.normal(0, NOISE_SD, n)
    )
    frame["units_sold"] = np.round(np.clip(units, 0, None), 2)
    return frame


def seed_data(data_dir: Path) -> None:
    """The example data `load_raw` reads: one CSV of simulated sales."""
    simulate().to_csv(Path(data_dir) / "sales.csv", index=False)


def new_batch(data_dir: Path, name: str, **knobs: Any) -> pd.DataFrame:
    """A later export of sales landing beside the first (`load_raw` reads every CSV).

    `knobs` are simulate()'s arguments: `start` after the last day already there, and
    `drift` / `concept` to make the world change (`only`: in some marketplaces).
    """
    frame = simulate(**knobs)
    frame.to_csv(Path(data_dir) / f"{name}.csv", index=False)
    return frame
