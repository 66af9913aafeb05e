"""A linear model with one intercept per marketplace: the simulator's true form."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

CATEGORICAL = ["marketplace"]
NUMERIC = ["price", "promo", "temperature", "is_weekend"]


@dataclass
class Params:
    alpha: float = 1.0


def train(X: pd.DataFrame, y: pd.Series, params: Params) -> Pipeline:
    model = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                        ("numeric", "passthrough", NUMERIC),
                    ]
                ),
            ),
            ("ridge", Ridge(alpha=params.alpha)),
        ]
    )
    return model.fit(X, y)
