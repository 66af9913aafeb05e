"""scikit-learn's bundled diabetes study (Efron et al., 2004): no download, no data_dir needed.

442 patients: age, sex, body mass index, mean blood pressure and six blood serum measurements
at baseline, and a measure of disease progression one year later. Read unscaled (years,
kg/m², mmHg, mg/dL), as a clinic would send them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_diabetes

# sklearn's s1..s6, by what they measure (sklearn's dataset description names them)
SERUM = {"s1": "tc", "s2": "ldl", "s3": "hdl", "s4": "tch", "s5": "ltg", "s6": "glu"}


def load_raw(data_dir: Path) -> pd.DataFrame:
    """The study as sklearn ships it, its target named `progression`."""
    frame = load_diabetes(as_frame=True, scaled=False).frame
    return frame.rename(columns={"target": "progression"})


def build_features(raw: pd.DataFrame) -> pd.DataFrame:
    """The baseline measurements with the serum columns named; sex is a category (1 or 2)."""
    features = raw.rename(columns=SERUM)
    features["age"] = features["age"].astype(int)
    features["sex"] = features["sex"].astype(int)
    return features
