"""One project's contract run: its temporary home, the steps its items share (raw,
features, one training), computed once, and each contract's check."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelfactory.errors import ProjectError
from modelfactory.ml import datasets, gate
from modelfactory.ml.evaluation import METRICS, predict_with_scores
from modelfactory.stores.home import local_home, model_registry
from modelfactory.testing.contracts import SAMPLE_ROWS, ContractWarning
from modelfactory.testing.diagnostics import (
    as_dict,
    as_list,
    blame,
    quiet,
    require_fitted,
    validated,
)
from modelfactory.testing.mlflow_store import copy_empty_store
from modelfactory.testing.properties import property_check
from modelfactory.testing.request_check import (
    check_answer,
    check_response,
    null_problem,
    request_example,
    serve_example,
)

if TYPE_CHECKING:
    import pandas as pd

    from modelfactory.project.loader import ModelProject

# Deferred imports: mlflow (~4 s) loads only when a contract loads a logged model: this pytest11
# plugin loads in every pytest run of a project with modelfactory installed.

__all__ = ["ProjectRun", "Trained"]


# The item that reports a shared step's failure; the others that need the step are skipped.
_STEP_OWNER = {
    "raw": "load_raw_passes_raw_schema",
    "features": "build_features_passes_feature_schema",
    "trained": "train_returns_fitted_estimator",
}
_STEP_NEEDS = {"raw": (), "features": ("raw",), "trained": ("features",)}
_ENV = ("MODELFACTORY_HOME", "DAGSTER_HOME", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")


@dataclasses.dataclass(frozen=True)
class Trained:
    X: pd.DataFrame  # the training sample
    y: pd.Series
    X_test: pd.DataFrame  # the whole holdout
    y_test: pd.Series
    estimator: Any


class ProjectRun:
    """One project's contract run: its temporary home and the steps its items share."""

    def __init__(self, project: ModelProject, config: pytest.Config) -> None:
        self.project = project
        self._config = config
        self._home: Path | None = None
        self._done: dict[str, Any] = {}
        self._failed: dict[str, Exception] = {}
        self._reported: set[str] = set()
        self._asking = ""

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """MODELFACTORY_HOME and DAGSTER_HOME of this project's own while one item runs."""
        if self._home is None:
            self._home = Path(tempfile.mkdtemp(prefix=f"mf-contracts-{self.project.name}-"))
            self._config.add_cleanup(functools.partial(shutil.rmtree, self._home, True))
        saved = {key: os.environ.get(key) for key in _ENV}
        os.environ["MODELFACTORY_HOME"] = str(self._home)
        os.environ["DAGSTER_HOME"] = str(self._home / "dagster")
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def check(self, contract: str) -> None:
        self._asking = contract
        try:
            getattr(self, f"_check_{contract}")()
        finally:
            self._reported.add(contract)

    def step(self, name: str) -> Any:
        """A shared step's result, computed once; its failure is reported by its own item."""
        for needed in _STEP_NEEDS[name]:
            self.step(needed)
        if name not in self._done and name not in self._failed:
            try:
                self._done[name] = getattr(self, f"_{name}")()
            except Exception as exc:
                self._failed[name] = exc
        if name in self._failed:
            owner = _STEP_OWNER[name]
            if owner != self._asking and owner in self._reported:
                pytest.skip(f"{self.project.name}: needs {owner}, which failed")
            raise self._failed[name]
        return self._done[name]

    # -- the shared steps -------------------------------------------------------------

    def _raw(self) -> pd.DataFrame:
        # deferred: loads dagster; every pytest run loads this plugin
        from modelfactory.orchestration.runs import seed_data

        project = self.project
        data_dir = local_home().data(project.name)
        with blame(project, "simulate.py", "seed_data"):
            seed_data(project)
        data_dir.mkdir(parents=True, exist_ok=True)
        load_raw = project.function("features", "load_raw")
        with blame(project, "features.py", "load_raw"):
            frame = load_raw(data_dir)
        raw = validated(project, frame, "load_raw", "RawSchema")
        if raw.empty:
            raise ProjectError(
                f"{project.shown('features.py')}: load_raw returned no rows from the example "
                "data; give the project a simulate.py with seed_data(data_dir), or data of its own"
            )
        return raw

    def _features(self) -> pd.DataFrame:
        build_features = self.project.function("features", "build_features")
        with blame(self.project, "features.py", "build_features"):
            frame = build_features(self._done["raw"])
        return validated(self.project, frame, "build_features", "FeatureSchema")

    def _trained(self) -> Trained:
        """The split asset's split of all the features; training on a sample of its rows."""

        project, spec = self.project, self.project.spec
        with blame(project, "model.yaml", "splitting the features (split)"):
            split = datasets.split_frame(self._done["features"], spec)
            X, y = datasets.xy(split, spec, "train")
            X_test, y_test = datasets.xy(split, spec, "test")
        X, y = _sample(X, y, spec)
        return Trained(X, y, X_test, y_test, self._train(X, y))

    def _train(self, X: pd.DataFrame, y: pd.Series) -> Any:
        project = self.project
        shown = project.shown("train.py")
        params = project.params()
        train = project.function("train", "train")
        with blame(project, "train.py", "train"):
            estimator = train(X, y, params)
        if not hasattr(estimator, "predict"):
            raise ProjectError(
                f"{shown}: train must return a fitted estimator with predict(), "
                f"got {type(estimator).__name__}"
            )
        require_fitted(estimator, shown)
        with blame(project, "train.py", "the trained estimator's predict"):
            predictions = estimator.predict(X)
        if len(predictions) != len(X):
            raise ProjectError(
                f"{shown}: the trained estimator's predict returned {len(predictions)} values "
                f"for {len(X)} rows; it must return one prediction per row"
            )
        return estimator

    # -- the contracts ----------------------------------------------------------------

    def _check_load_raw_passes_raw_schema(self) -> None:
        self.step("raw")

    def _check_build_features_passes_feature_schema(self) -> None:
        self.step("features")

    def _check_train_returns_fitted_estimator(self) -> None:
        self.step("trained")

    def _check_build_features_holds_for_generated_raw(self) -> None:
        property_check(self.project)

    def _check_evaluation_runs_the_gate(self) -> None:
        """What the candidate and evaluation assets compute, on the trained sample: a failure
        here is a failure of `modelfactory train`; a gate that would not promote is a warning
        (on a sample, a model may well miss a threshold the whole data meets)."""

        project, trained = self.project, self.step("trained")
        spec = project.spec
        with blame(project, "train.py", "scoring the training rows (the candidate asset)"):
            gate.score(spec, trained.estimator, trained.X, trained.y, slices=False)
        with blame(project, "model.yaml", "scoring the holdout (the evaluation asset)"):
            holdout = gate.score(spec, trained.estimator, trained.X_test, trained.y_test)
            first = gate.judge(spec, holdout, None)
            gate.judge(spec, holdout, holdout.scores)  # a retrain: against a champion
        if not first.passed:
            warnings.warn(
                ContractWarning(
                    f"{project.shown('model.yaml')}: trained on {len(trained.X)} rows, the "
                    f"model would not be promoted: the gate {first.summary}"
                ),
                stacklevel=1,
            )

    def _check_logged_model_serves_requests(self) -> None:
        import mlflow.pyfunc

        project, trained = self.project, self.step("trained")
        example = request_example(project, trained.X_test)
        rows, frame, row_source = example.rows, example.frame, example.source
        home = local_home().ensure()
        copy_empty_store(self._config, home.mlflow_dir / "mlflow.db")
        registry = model_registry()
        with quiet("mlflow", "alembic"):
            with blame(project, "train.py", "logging the trained estimator to the registry"):
                logged = registry.log_candidate(
                    model=project.name,
                    estimator=trained.estimator,
                    X_sample=trained.X.head(50),
                    params=as_dict(project.params()),
                    metrics={},
                    tags={"mf.code_version": project.code_version, "mf.contract_test": "true"},
                )
            mlflow.set_tracking_uri(registry.tracking_uri)
            mlflow.set_registry_uri(registry.tracking_uri)
            with blame(project, "train.py", "mlflow.pyfunc.load_model on the logged model"):
                name = registry.registered_name(project.name)
                model = mlflow.pyfunc.load_model(f"models:/{name}/{logged.version}")
        with blame(
            project, "train.py", f"the logged model's predict on {len(rows)} rows ({row_source})"
        ):
            try:
                values = as_list(model.predict(frame))
            except Exception as exc:
                problem = null_problem(project, model.predict, example)
                if problem is None:
                    raise
                raise ProjectError(problem) from exc
        check_answer(project, values, trained.y, len(rows), "through mlflow.pyfunc")
        values, scores = serve_example(project, registry, logged.version, example)
        check_answer(project, values, trained.y, len(rows), "at the endpoint")
        check_response(project, values, scores, logged.version)

    def _check_same_seed_same_metric(self) -> None:
        project, trained = self.project, self.step("trained")
        metric = METRICS[project.spec.metric.name]
        second = self._train(trained.X, trained.y)
        outcomes = []
        for estimator in (trained.estimator, second):
            with blame(project, "train.py", f"scoring {metric.name} on the holdout"):
                predicted = predict_with_scores(estimator, trained.X_test)
                score = metric.score(
                    trained.y_test, predicted.labels, predicted.proba, predicted.classes
                )
            outcomes.append((score, list(predicted.labels)))
        (first_score, first_pred), (second_score, second_pred) = outcomes
        same = (
            first_pred == second_pred
            if math.isnan(first_score) or math.isnan(second_score)
            else math.isclose(first_score, second_score, rel_tol=1e-9, abs_tol=1e-12)
        )
        if not same:
            raise ProjectError(
                f"{project.shown('train.py')}: two trainings on the same {len(trained.X)} rows "
                f"with the same params scored {metric.name} {first_score!r} and "
                f"{second_score!r} on the holdout; seed every source of randomness (e.g. "
                "random_state=...) so that a retrain is reproducible"
            )


# -- the property test ----------------------------------------------------------------


def _sample(X: pd.DataFrame, y: pd.Series, spec: Any) -> tuple[pd.DataFrame, pd.Series]:
    """Up to SAMPLE_ROWS training rows, in their order: a seeded sample, with every class of a
    classifier's target in it (data sorted by label would otherwise lose classes)."""
    if len(X) <= SAMPLE_ROWS:
        return X, y
    keep = y.sample(n=SAMPLE_ROWS, random_state=spec.split.seed).index
    if spec.task == "classification":
        keep = keep.union(y.drop_duplicates().index)
    keep = keep.sort_values()
    return X.loc[keep].reset_index(drop=True), y.loc[keep].reset_index(drop=True)
