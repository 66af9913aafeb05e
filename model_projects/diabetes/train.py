"""Ridge regression on standardised measurements, sex one-hot: the study's own baseline
(its lasso and LARS fits are linear too), and fast to retrain."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CATEGORICAL = ["sex"]
NUMERIC = ["age", "bmi", "bp", "tc", "ldl", "hdl", "tch", "ltg", "glu"]


@dataclass
class Params:
    alpha: float = 1.0


def train(X: pd.DataFrame, y: pd.Series, params: Params) -> Pipeline:
    columns = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("numeric", StandardScaler(), NUMERIC),
        ]
    )
    model = Pipeline([("columns", columns), ("ridge", Ridge(alpha=params.alpha))])
    return model.fit(X, y)
