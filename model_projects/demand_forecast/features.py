"""Raw sales in, model inputs out. Plain pandas: runs the same in a notebook."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def load_raw(data_dir: Path) -> pd.DataFrame:
    """Every sales CSV in data_dir, oldest file first (new batches arrive as new files)."""
    files = sorted(Path(data_dir).glob("*.csv"))
    if not files:
        raise FileNotFoundError(
            f"no sales CSV in {data_dir}; run `modelfactory seed demand_forecast`"
        )
    return pd.concat(
        [pd.read_csv(f, parse_dates=["date"], dtype={"product_id": str}) for f in files],
        ignore_index=True,
    )


def build_features(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per sale with calendar features; `date` stays for the time-ordered holdout."""
    return pd.DataFrame(
        {
            "date": raw["date"],
            "marketplace": raw["marketplace"],
            "price": raw["price"].astype(float),
            "promo": raw["promo"].astype(int),
            "temperature": raw["temperature"].astype(float),
            "is_weekend": (raw["date"].dt.dayofweek >= 5).astype(int),
            "units_sold": raw["units_sold"].astype(float),
        }
    )
