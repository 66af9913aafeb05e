"""The Palmer Station penguins (the `palmerpenguins` package ships them: no download).

344 penguins of three species on three islands, 2007-2009; some measurements and some sexes
were not recorded (NaN), and stay missing for train.py's imputer to fill.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

MEASUREMENTS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def load_raw(data_dir: Path) -> pd.DataFrame:
    """The packaged table as it is; data_dir is not needed (the data ships with the package)."""
    from palmerpenguins import load_penguins

    return load_penguins()


def build_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Island, sex and the four measurements; `year` is dropped (when a penguin was
    measured says nothing of its species, and a model should not learn the study's order)."""
    return raw[["island", *MEASUREMENTS, "sex", "species"]].reset_index(drop=True)
