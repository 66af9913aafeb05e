"""scikit-learn's bundled Wisconsin breast-cancer data: no download, no data_dir needed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer


def load_raw(data_dir: Path) -> pd.DataFrame:
    """569 measured masses; `malignant` is 1 for malignant (sklearn's target is the reverse)."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["malignant"] = 1 - frame.pop("target")
    return frame


def build_features(raw: pd.DataFrame) -> pd.DataFrame:
    """The measurements as they are, plus the nucleus's compactness of shape."""
    features = raw.copy()
    features["area_to_perimeter"] = raw["mean_area"] / raw["mean_perimeter"]
    return features
