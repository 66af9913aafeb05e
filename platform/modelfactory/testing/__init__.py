"""The contract tests every model project gets: a pytest plugin, so there is nothing to copy.

For each `model_projects/<name>/model.yaml` that pytest walks past, it collects seven items:

    model.yaml::load_raw_passes_raw_schema            load_raw on the example data -> RawSchema
    model.yaml::build_features_passes_feature_schema  build_features(raw) -> FeatureSchema
    model.yaml::build_features_holds_for_generated_raw
                                   hypothesis: any frame RawSchema accepts -> FeatureSchema
    model.yaml::train_returns_fitted_estimator        split as the split asset does, train on a
                                   sample of the training rows -> fitted, predicts
    model.yaml::evaluation_runs_the_gate              the candidate's and the evaluation's code
                                   (gate.py): every metric of the task on the training rows and
                                   the holdout, model.yaml's metric, slices and thresholds, the
                                   verdict with no champion and against a champion
    model.yaml::logged_model_serves_requests          logged through the registry (MLflow), loaded
                                   by mlflow.pyfunc and by the endpoint, answers holdout rows
                                   (those with missing values first, and one row with every
                                   nullable column null) sent through the endpoint's request
                                   model; the answer passes PredictResponse, fits the task,
                                   and passes schemas.py:ResponseRow if defined
    model.yaml::same_seed_same_metric                 two trainings, same rows and params -> the
                                                      same holdout metric

Why a plugin registered by a `pytest11` entry point (pyproject.toml) and not a conftest.py:
it is active in every pytest run wherever modelfactory is installed (this repository, CI, a
scratch copy of the repository in a test), with no file to copy into each checkout or keep in
sync, and a project made by `modelfactory new` has its contracts as soon as its model.yaml
exists. `-p no:modelfactory.testing` turns it off; `-m contract` / `-m "not contract"` select.
Importing it costs nothing: pandas, pandera, hypothesis and MLflow load when an item runs.

A failure is a paragraph naming the file to fix and the contract broken (repr_failure), never a
traceback through the platform. Each project runs with a temporary MODELFACTORY_HOME and
DAGSTER_HOME of its own, set while its items run and restored after. The costly steps (seed,
features, one training, one logged model) run once per project and its items share them; an
item whose input step already failed under its own item is skipped, naming that item.

The plugin is in modules by concept: plugin.py (the hooks, files and items), project_run.py
(a project's run and its checks), contracts.py (names, promises, sizes), properties.py (the
hypothesis contract), request_check.py (the serving contract's request and response),
mlflow_store.py (the empty MLflow store each run copies) and diagnostics.py (how a failure
reads). pytest11 loads this module: the hooks must be attributes of it, hence the re-exports.
"""

from __future__ import annotations

from modelfactory.testing.contracts import (
    CONTRACTS,
    GENERATED_ROWS,
    MAX_EXAMPLES,
    REQUEST_ROWS,
    SAMPLE_ROWS,
    ContractWarning,
)
from modelfactory.testing.plugin import (
    ContractFile,
    ContractItem,
    pytest_collect_file,
    pytest_configure,
)

__all__ = [
    "CONTRACTS",
    "GENERATED_ROWS",
    "MAX_EXAMPLES",
    "REQUEST_ROWS",
    "SAMPLE_ROWS",
    "ContractFile",
    "ContractItem",
    "ContractWarning",
    "pytest_collect_file",
    "pytest_configure",
]
