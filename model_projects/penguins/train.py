"""A multinomial logistic regression on imputed, scaled measurements and one-hot island
and sex. Missing values are imputed inside the pipeline, so the endpoint's NaN are too."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CATEGORICAL = ["island", "sex"]
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


@dataclass
class Params:
    C: float = 1.0


def train(X: pd.DataFrame, y: pd.Series, params: Params) -> Pipeline:
    columns = ColumnTransformer(
        [
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                CATEGORICAL,
            ),
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
        ]
    )
    model = Pipeline(
        [("columns", columns), ("logistic", LogisticRegression(C=params.C, max_iter=1000))]
    )
    return model.fit(X, y)
