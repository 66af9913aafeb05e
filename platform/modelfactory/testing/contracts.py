"""The contracts each model project gets: their names and what each promises, the sizes
they run at, and the warning a contract that held with a caveat raises."""

from __future__ import annotations

__all__ = [
    "CONTRACTS",
    "GENERATED_ROWS",
    "MAX_EXAMPLES",
    "REQUEST_ROWS",
    "SAMPLE_ROWS",
    "ContractWarning",
]


SAMPLE_ROWS = 500  # training rows for the training contracts: enough to fit, quick to fit
REQUEST_ROWS = 5  # holdout rows sent as one request
GENERATED_ROWS = 5  # rows in each raw frame hypothesis generates
MAX_EXAMPLES = 25  # raw frames per project; derandomized, so every run tries the same ones

CONTRACTS: dict[str, str] = {
    "load_raw_passes_raw_schema": (
        "load_raw(data_dir) on the project's example data passes schemas.py:RawSchema"
    ),
    "build_features_passes_feature_schema": "build_features(raw) passes schemas.py:FeatureSchema",
    "build_features_holds_for_generated_raw": (
        "for any raw frame schemas.py:RawSchema accepts, build_features passes FeatureSchema"
    ),
    "train_returns_fitted_estimator": (
        f"train(X, y, params) on up to {SAMPLE_ROWS} training rows returns a fitted estimator"
    ),
    "evaluation_runs_the_gate": (
        "the candidate's and the evaluation's metrics, slices and promotion gate (model.yaml) "
        "run on the trained model, the training rows and the holdout"
    ),
    "logged_model_serves_requests": (
        "the model logged to the registry loads with mlflow.pyfunc and at the endpoint and "
        "answers a request-schema example with a response that passes the response schema"
    ),
    "same_seed_same_metric": (
        "two trainings on the same rows with the same params score the same holdout metric"
    ),
}


class ContractWarning(UserWarning):
    """A contract held, with a caveat the project's author should read (pytest shows it)."""
