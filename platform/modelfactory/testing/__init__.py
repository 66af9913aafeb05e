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
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import shutil
import tempfile
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelfactory.errors import ModelFactoryError, ProjectError
from modelfactory.ml import datasets, gate
from modelfactory.ml.datasets import validate_frame
from modelfactory.ml.evaluation import METRICS, predict_with_scores
from modelfactory.project.loader import import_project, load_project
from modelfactory.serving.request_schema import PredictResponse, build_request_model, input_columns
from modelfactory.serving.routing import ModelSlot, Refresher, RouteTarget, missing_as_nan
from modelfactory.stores.home import local_home, model_registry

if TYPE_CHECKING:
    import pandas as pd
    from pydantic import ValidationError

    from modelfactory.project.loader import ModelProject

__all__ = ["CONTRACTS", "ContractFile", "ContractItem", "ContractWarning", "pytest_collect_file"]

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


# The item that reports a shared step's failure; the others that need the step are skipped.
_STEP_OWNER = {
    "raw": "load_raw_passes_raw_schema",
    "features": "build_features_passes_feature_schema",
    "trained": "train_returns_fitted_estimator",
}
_STEP_NEEDS = {"raw": (), "features": ("raw",), "trained": ("features",)}
_ENV = ("MODELFACTORY_HOME", "DAGSTER_HOME", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
_STORE_TEMPLATE = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "contract: a model project's generated contract test")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """`model_projects/<name>/model.yaml` -> that project's contract items."""
    if file_path.name == "model.yaml" and file_path.parent.parent.name == "model_projects":
        return ContractFile.from_parent(parent, path=file_path)
    return None


class ContractFile(pytest.File):
    """One model project's model.yaml; its items are the contracts."""

    def collect(self) -> Iterator[pytest.Item]:
        try:  # the same check, and the same message, as a code location's (fleet.py)
            project = import_project(load_project(self.path.parent))
        except ModelFactoryError as exc:  # one broken project never hides the others
            yield ContractItem.from_parent(self, name="project_loads", run=None, error=exc)
            return
        run = _ProjectRun(project, self.config)
        for name in CONTRACTS:
            yield ContractItem.from_parent(self, name=name, run=run, error=None)


class ContractItem(pytest.Item):
    """One contract of one project."""

    def __init__(
        self, *, run: _ProjectRun | None, error: ModelFactoryError | None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.run, self.error = run, error
        self.add_marker(pytest.mark.contract)

    def runtest(self) -> None:
        if self.run is None:
            raise self.error or ProjectError(f"{self.path}: not a model project")
        with self.run.environment():
            self.run.check(self.name)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ModelFactoryError):
            contract = CONTRACTS.get(self.name, "the project loads (model.yaml and its files)")
            return f"{excinfo.value}\n  contract: {contract}"
        return super().repr_failure(excinfo, style=style)  # a bug in the platform: traceback

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.path.parent.name}: {self.name}"


@dataclasses.dataclass(frozen=True)
class _Trained:
    X: pd.DataFrame  # the training sample
    y: pd.Series
    X_test: pd.DataFrame  # the whole holdout
    y_test: pd.Series
    estimator: Any


class _ProjectRun:
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
        with _blame(project, "simulate.py", "seed_data"):
            seed_data(project)
        data_dir.mkdir(parents=True, exist_ok=True)
        load_raw = project.function("features", "load_raw")
        with _blame(project, "features.py", "load_raw"):
            frame = load_raw(data_dir)
        raw = _validated(project, frame, "load_raw", "RawSchema")
        if raw.empty:
            raise ProjectError(
                f"{project.shown('features.py')}: load_raw returned no rows from the example "
                "data; give the project a simulate.py with seed_data(data_dir), or data of its own"
            )
        return raw

    def _features(self) -> pd.DataFrame:
        build_features = self.project.function("features", "build_features")
        with _blame(self.project, "features.py", "build_features"):
            frame = build_features(self._done["raw"])
        return _validated(self.project, frame, "build_features", "FeatureSchema")

    def _trained(self) -> _Trained:
        """The split asset's split of all the features; training on a sample of its rows."""

        project, spec = self.project, self.project.spec
        with _blame(project, "model.yaml", "splitting the features (split)"):
            split = datasets.split_frame(self._done["features"], spec)
            X, y = datasets.xy(split, spec, "train")
            X_test, y_test = datasets.xy(split, spec, "test")
        X, y = _sample(X, y, spec)
        return _Trained(X, y, X_test, y_test, self._train(X, y))

    def _train(self, X: pd.DataFrame, y: pd.Series) -> Any:
        project = self.project
        shown = project.shown("train.py")
        params = project.params()
        train = project.function("train", "train")
        with _blame(project, "train.py", "train"):
            estimator = train(X, y, params)
        if not hasattr(estimator, "predict"):
            raise ProjectError(
                f"{shown}: train must return a fitted estimator with predict(), "
                f"got {type(estimator).__name__}"
            )
        _require_fitted(estimator, shown)
        with _blame(project, "train.py", "the trained estimator's predict"):
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
        _property_check(self.project)

    def _check_evaluation_runs_the_gate(self) -> None:
        """What the candidate and evaluation assets compute, on the trained sample: a failure
        here is a failure of `modelfactory train`; a gate that would not promote is a warning
        (on a sample, a model may well miss a threshold the whole data meets)."""

        project, trained = self.project, self.step("trained")
        spec = project.spec
        with _blame(project, "train.py", "scoring the training rows (the candidate asset)"):
            gate.score(spec, trained.estimator, trained.X, trained.y, slices=False)
        with _blame(project, "model.yaml", "scoring the holdout (the evaluation asset)"):
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
        example = _request_example(project, trained.X_test)
        rows, frame, row_source = example.rows, example.frame, example.source
        home = local_home().ensure()
        _copy_empty_store(self._config, home.mlflow_dir / "mlflow.db")
        registry = model_registry()
        with _quiet("mlflow", "alembic"):
            with _blame(project, "train.py", "logging the trained estimator to the registry"):
                logged = registry.log_candidate(
                    model=project.name,
                    estimator=trained.estimator,
                    X_sample=trained.X.head(50),
                    params=_as_dict(project.params()),
                    metrics={},
                    tags={"mf.code_version": project.code_version, "mf.contract_test": "true"},
                )
            mlflow.set_tracking_uri(registry.tracking_uri)
            mlflow.set_registry_uri(registry.tracking_uri)
            with _blame(project, "train.py", "mlflow.pyfunc.load_model on the logged model"):
                name = registry.registered_name(project.name)
                model = mlflow.pyfunc.load_model(f"models:/{name}/{logged.version}")
        with _blame(
            project, "train.py", f"the logged model's predict on {len(rows)} rows ({row_source})"
        ):
            try:
                values = _as_list(model.predict(frame))
            except Exception as exc:
                problem = _null_problem(project, model.predict, example)
                if problem is None:
                    raise
                raise ProjectError(problem) from exc
        _check_answer(project, values, trained.y, len(rows), "through mlflow.pyfunc")
        values, scores = _serve(project, registry, logged.version, example)
        _check_answer(project, values, trained.y, len(rows), "at the endpoint")
        _check_response(project, values, scores, logged.version)

    def _check_same_seed_same_metric(self) -> None:
        project, trained = self.project, self.step("trained")
        metric = METRICS[project.spec.metric.name]
        second = self._train(trained.X, trained.y)
        outcomes = []
        for estimator in (trained.estimator, second):
            with _blame(project, "train.py", f"scoring {metric.name} on the holdout"):
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


class _Broken(Exception):
    """build_features failed on a generated frame (raised from one place, so hypothesis
    reports one failure, not a group of them)."""


def _property_check(project: ModelProject) -> None:
    import pandas as pd
    from hypothesis import HealthCheck, Phase, Verbosity, assume, given, settings
    from hypothesis.errors import HypothesisException

    raw_schema = project.schema("RawSchema")
    feature_schema = project.schema("FeatureSchema")
    build_features = project.function("features", "build_features")
    schemas, features = project.shown("schemas.py"), project.shown("features.py")
    try:
        strategy = raw_schema.strategy(size=GENERATED_ROWS)
    except Exception as exc:
        raise ProjectError(
            f"{schemas}: pandera cannot generate raw frames from RawSchema ({_describe(exc)}); "
            "give its custom checks a strategy (pandera's register_check_method(strategy=...))"
        ) from None
    found: list[tuple[pd.DataFrame, str, int]] = []

    def problem(raw: pd.DataFrame) -> tuple[str, int] | None:
        """What went wrong on a generated frame, and the row to show (0 when unknown)."""
        try:
            frame = build_features(raw)
        except Exception as exc:
            return f"raised {_describe(exc)}{_where(project, exc)}", 0
        if not hasattr(frame, "columns"):
            return f"returned {type(frame).__name__}, not a pandas DataFrame", 0
        outcome = validate_frame(feature_schema, frame, what=f"{features}: build_features")
        if outcome.passed:
            return None
        rows = pd.to_numeric(outcome.failures.get("index"), errors="coerce").dropna()
        row = int(rows.iloc[0]) if len(rows) and 0 <= rows.iloc[0] < len(raw) else 0
        what = _schema_problem(frame, feature_schema, "FeatureSchema", "build_features", outcome)
        return what, row

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        # No shrinking: on a wide frame it can take hypothesis minutes (it stops at 300 s).
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
        verbosity=Verbosity.quiet,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def holds(generated: pd.DataFrame) -> None:
        checked = validate_frame(raw_schema, generated, what="hypothesis")
        assume(checked.passed)  # the platform validates raw rows before build_features
        found_problem = problem(checked.frame)
        if found_problem is not None:
            found.append((checked.frame, *found_problem))
            raise _Broken(found_problem[0])

    try:
        holds()
    except Exception as exc:
        if not found and isinstance(exc, HypothesisException):
            raise ProjectError(
                f"{schemas}: hypothesis could not generate raw frames from RawSchema "
                f"({_describe(exc)}); loosen checks that almost no value passes"
            ) from None
        if not found:
            raise
        raw, what, row = found[-1]
        shown_row = raw.iloc[[row]].to_dict("records")[0] if len(raw) else {}
        raise ProjectError(
            f"{features}: build_features {what}\n  on a raw frame that passes "
            f"schemas.py:RawSchema (generated by hypothesis; its row {row}: "
            f"{_shorten(repr(shown_row), 800)})\n  make build_features handle such rows, or "
            "tighten RawSchema so that it rejects them as raw data"
        ) from None


# -- the request and the response -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Example:
    """A request for the serving contract: validated rows, the frame the endpoint makes of
    them, where the request schema comes from, and the columns it lets be null (all of them
    null in the last row)."""

    rows: list[dict[str, Any]]
    frame: pd.DataFrame
    source: str
    nullable: list[str]


def _request_example(project: ModelProject, X_test: pd.DataFrame) -> _Example:
    """Holdout rows as an application would send them, through the endpoint's request model,
    and one more with every nullable column null: the schema lets a client send it whether or
    not the holdout has missing values, so the model must answer it."""
    import pandas as pd
    from pydantic import ValidationError

    schemas = project.shown("schemas.py")
    request_model = build_request_model(project)
    columns = input_columns(request_model)
    source = (
        "schemas.py:RequestRow"
        if hasattr(project.module("schemas"), "RequestRow")
        else "derived from schemas.py:FeatureSchema"
    )
    missing = [c for c in columns if c not in X_test.columns]
    if missing:
        raise ProjectError(
            f"{schemas}: the endpoint's request schema ({source}) needs "
            f"{', '.join(map(repr, missing))}, which build_features does not return"
        )
    holdout = X_test[columns]
    incomplete = holdout.isna().any(axis=1)  # sent as null: the nullable path first
    sample = pd.concat([holdout[incomplete], holdout[~incomplete]]).head(REQUEST_ROWS)
    body = '{"rows": ' + sample.to_json(orient="records", date_format="iso") + "}"
    try:
        parsed = request_model.model_validate_json(body)
    except ValidationError as exc:
        raise ProjectError(
            f"{schemas}: holdout rows from build_features do not pass the endpoint's request "
            f"schema ({source}): {_pydantic_errors(exc)}"
        ) from None
    rows = [row if isinstance(row, dict) else row.model_dump() for row in parsed.rows]
    nullable = [column for column in columns if _accepts_null(request_model, rows[0], column)]
    if nullable:
        rows += _parsed(request_model, [{**rows[0], **dict.fromkeys(nullable)}])
    return _Example(rows, _request_frame(rows, columns), source, nullable)


def _parsed(request_model: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` through the request model as the endpoint parses them (from JSON)."""
    from pydantic_core import to_json

    parsed = request_model.model_validate_json(to_json({"rows": rows})).rows
    return [row if isinstance(row, dict) else row.model_dump() for row in parsed]


def _accepts_null(request_model: Any, row: dict[str, Any], column: str) -> bool:
    from pydantic import ValidationError

    try:
        _parsed(request_model, [{**row, column: None}])
    except ValidationError:
        return False
    return True


def _request_frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """The frame the endpoint predicts on: its nulls as NaN (serving.routing)."""
    import pandas as pd

    return missing_as_nan(pd.DataFrame.from_records(rows, columns=columns))


def _null_problem(project: ModelProject, predict: Any, example: _Example) -> str | None:
    """Why the model failed, if a column the request schema lets be null is the cause: a
    complete row predicts, and the same row with that column null does not."""
    columns = list(example.frame.columns)
    complete = [row for row in example.rows if all(v is not None for v in row.values())]
    if not example.nullable or not complete:
        return None
    base = complete[0]
    try:
        predict(_request_frame([base], columns))
    except Exception:
        return None  # the model fails on complete rows too: not the nulls' doing
    missing = []
    for column in example.nullable:
        try:
            predict(_request_frame([{**base, column: None}], columns))
        except Exception as exc:
            missing.append((column, exc))
    if not missing:
        return None
    names = ", ".join(repr(column) for column, _ in missing)
    says = (
        "RequestRow accepts null for"
        if example.source == "schemas.py:RequestRow"
        else "FeatureSchema says"
    )
    are = "is" if len(missing) == 1 else "are"
    return (
        f"{project.shown('schemas.py')}: {says} column {names} {are} nullable, but "
        f"{project.shown('train.py')}'s model cannot predict with it missing "
        f"({_describe(missing[0][1])}): impute it or make it non-nullable"
    )


def _serve(
    project: ModelProject, registry: Any, version: str, example: _Example
) -> tuple[list[Any], list[float] | None]:
    """The endpoint's own answer: its refresher loads the version into a slot, as when the
    version becomes champion, and the loaded version predicts the validated rows."""
    import asyncio

    rows, frame = example.rows, example.frame
    slot = ModelSlot(name=project.name, request_model=None, columns=list(frame.columns))
    refresher = Refresher(
        {project.name: slot},
        resolve=lambda: {project.name: RouteTarget(stable=version)},
        load=registry.load,
        executor=None,
    )
    with _quiet("mlflow", "modelfactory"):
        refresher.refresh()
    if slot.route is None:
        raise ProjectError(
            f"{project.shown('train.py')}: the endpoint could not load the logged model "
            f"v{version}: {slot.problem or 'no route'}"
        )
    loaded = slot.route.stable
    try:
        answer = asyncio.run(loaded.predict(rows))
    except Exception as exc:
        failure = _null_problem(project, loaded.estimator.predict, example)
        failure = failure or _endpoint_failure(
            project, loaded.estimator, frame, example.source, exc
        )
        raise ProjectError(failure) from exc
    return list(answer.predictions), answer.scores


def _check_answer(
    project: ModelProject, values: list[Any], y_train: pd.Series, n_rows: int, where: str
) -> None:
    """One prediction per row, of the kind the task promises."""
    spec, train = project.spec, project.shown("train.py")
    if len(values) != n_rows:
        raise ProjectError(
            f"{train}: the logged model answered {len(values)} predictions for {n_rows} rows "
            f"{where}"
        )
    if spec.task == "regression":
        wrong = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float)]
        if wrong:
            raise ProjectError(
                f"{train}: model.yaml says task: regression, so predictions must be numbers; "
                f"the logged model answered {type(wrong[0]).__name__} values such as "
                f"{wrong[0]!r} {where}"
            )
        infinite = [v for v in values if not math.isfinite(v)]
        if infinite:
            raise ProjectError(
                f"{train}: predictions must be finite numbers; the logged model answered "
                f"{infinite[0]!r} {where}"
            )
        return
    labels = set(y_train.unique().tolist())
    unknown = [v for v in values if v not in labels]
    if unknown:
        raise ProjectError(
            f"{train}: model.yaml says task: classification, so predictions must be labels of "
            f"{spec.target!r} ({', '.join(map(repr, sorted(labels, key=str)))}); the logged "
            f"model answered {unknown[0]!r} {where}"
        )


def _check_response(
    project: ModelProject, values: list[Any], scores: list[float] | None, version: str
) -> None:
    """The endpoint's answer passes PredictResponse and the project's ResponseRow, if any."""
    from pydantic import BaseModel, ValidationError

    train = project.shown("train.py")
    predictions = [
        {"prediction": value, "version": version, "score": scores[i] if scores else None}
        for i, value in enumerate(values)
    ]
    try:
        PredictResponse.model_validate(
            {"request_id": "contract-test", "model": project.name, "predictions": predictions}
        )
    except ValidationError as exc:
        raise ProjectError(
            f"{train}: the logged model's answer breaks the endpoint's response schema "
            f"(modelfactory.serving.request_schema.PredictResponse): {_pydantic_errors(exc)}"
        ) from None
    row_model = getattr(project.module("schemas"), "ResponseRow", None)
    if row_model is None:
        return
    if not (isinstance(row_model, type) and issubclass(row_model, BaseModel)):
        raise ProjectError(
            f"{project.shown('schemas.py')}: ResponseRow must be a pydantic BaseModel "
            f"(one prediction: prediction, version, score), got {row_model!r}"
        )
    errors = []
    for i, prediction in enumerate(predictions):
        try:
            row_model.model_validate(prediction)
        except ValidationError as exc:
            errors.append(f"row {i}: {_pydantic_errors(exc, limit=1)}")
    if errors:
        raise ProjectError(
            f"{train}: the logged model's predictions break schemas.py:ResponseRow: "
            + "; ".join(errors[:3])
            + (f"; and {len(errors) - 3} more rows" if len(errors) > 3 else "")
        )


def _endpoint_failure(
    project: ModelProject, estimator: Any, frame: pd.DataFrame, source: str, exc: Exception
) -> str:
    """Why the endpoint could not predict rows that mlflow.pyfunc could."""
    problem = f"{_describe(exc)}{_where(project, exc)}"
    trained_on = [str(c) for c in getattr(estimator, "feature_names_in_", [])]
    sent = [str(c) for c in frame.columns]
    if trained_on and trained_on != sent and sorted(trained_on) == sorted(sent):
        first = next(i for i, (a, b) in enumerate(zip(sent, trained_on, strict=True)) if a != b)
        return (
            f"{project.shown('schemas.py')}: the endpoint sends the request's columns in the "
            f"order of its request schema ({source}), but train saw build_features' order: "
            f"column {first} is {sent[first]!r} in the request and {trained_on[first]!r} in "
            f"training, and the model refuses the rows ({problem}); declare the schema's "
            "columns in build_features' order"
        )
    return (
        f"{project.shown('train.py')}: the endpoint's predict on {len(frame)} request rows "
        f"({source}) raised {problem}"
    )


# -- helpers ----------------------------------------------------------------------------


def _validated(project: ModelProject, frame: Any, function: str, schema_name: str) -> Any:
    """The coerced frame, or a ProjectError naming features.py and what broke the schema."""

    shown = project.shown("features.py")
    schema = project.schema(schema_name)
    outcome = validate_frame(schema, frame, what=f"{shown}: {function}")
    if outcome.passed:
        return outcome.frame
    problem = _schema_problem(frame, schema, schema_name, function, outcome)
    raise ProjectError(f"{shown}: {function} {problem}")


def _schema_problem(frame: Any, schema: Any, name: str, function: str, outcome: Any) -> str:
    """What broke the schema, columns first: a missing column explains its other failures."""
    frame_schema = schema.to_schema() if hasattr(schema, "to_schema") else schema
    declared = {
        str(key): column
        for key, column in frame_schema.columns.items()
        if not getattr(column, "regex", False)
    }
    missing = [c for c, column in declared.items() if column.required and c not in frame.columns]
    if missing:
        verb = "dropped" if function == "build_features" else "returned no"
        plural = "s" if len(missing) > 1 else ""
        return (
            f"{verb} column{plural} {', '.join(map(repr, missing))} required by schemas.py:{name}"
        )
    extra = [str(c) for c in frame.columns if str(c) not in declared]
    if frame_schema.strict is True and extra:
        return (
            f"returned column{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
            f"that schemas.py:{name} does not declare (it is strict)"
        )
    return f"output breaks schemas.py:{name}: {outcome.describe(limit=3)}"


def _require_fitted(estimator: Any, shown: str) -> None:
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(estimator, BaseEstimator):
        return  # not scikit-learn: its predict on the training rows tells
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise ProjectError(
            f"{shown}: train returned an unfitted {type(estimator).__name__}; fit it before "
            "returning it (`return model.fit(X, y)`)"
        ) from None


@contextlib.contextmanager
def _blame(project: ModelProject, filename: str, what: str) -> Iterator[None]:
    """An exception from the project's code becomes a ProjectError naming its file and line."""
    try:
        yield
    except ModelFactoryError:
        raise
    except Exception as exc:
        raise ProjectError(
            f"{project.shown(filename)}: {what} raised {_describe(exc)}{_where(project, exc)}"
        ) from exc


def _where(project: ModelProject, exc: BaseException) -> str:
    """` (at features.py:12: <the line>)`: the deepest frame in the project's own files."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        if path.is_relative_to(project.root):
            line = (frame.line or "").strip()
            shown = project.shown(str(path.relative_to(project.root)))
            return f" (at {shown}:{frame.lineno}: {line})"
    return ""


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {_shorten(text[0], 300)}" if text else type(exc).__name__


def _pydantic_errors(exc: ValidationError, limit: int = 3) -> str:
    errors = exc.errors(include_url=False)
    parts = [
        f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {_shorten(repr(e['input']), 80)})"
        for e in errors[:limit]
    ]
    more = len(errors) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_list(predictions: Any) -> list[Any]:
    """A pyfunc answer (array, Series, one-column DataFrame, list) as plain Python values."""
    if hasattr(predictions, "columns") and len(predictions.columns) == 1:
        predictions = predictions.iloc[:, 0]
    if hasattr(predictions, "tolist"):
        return list(predictions.tolist())
    return list(predictions)


def _as_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)


def _copy_empty_store(config: pytest.Config, target: Path) -> None:
    """An empty MLflow sqlite store, copied into a project's home.

    Creating a store runs MLflow's migrations (seconds); a copy takes milliseconds. The empty
    store is made once per MLflow version and kept in pytest's cache (.pytest_cache), or once
    per session when the cache is off.
    """
    if target.exists():
        return
    template = config.stash.get(_STORE_TEMPLATE, None)
    if template is None or not template.exists():
        template = config.stash[_STORE_TEMPLATE] = _empty_store(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


def _empty_store(config: pytest.Config) -> Path:
    from importlib.metadata import version

    # deferred: loads dagster; every pytest run loads this plugin
    from modelfactory.stores.registry import ModelRegistry

    name = f"mlflow-{version('mlflow')}.db"
    cache = getattr(config, "cache", None)
    cached = cache.mkdir("modelfactory-contracts") / name if cache is not None else None
    if cached is not None and cached.exists():
        return cached
    folder = Path(tempfile.mkdtemp(prefix="mf-contracts-mlflow-"))
    config.add_cleanup(functools.partial(shutil.rmtree, folder, True))
    made = folder / name
    with _quiet("mlflow", "alembic"):
        ModelRegistry(tracking_uri=f"sqlite:///{made}").latest_version("-")
    if cached is None:
        return made
    partial = cached.with_name(f"{name}.{os.getpid()}")
    shutil.copyfile(made, partial)
    os.replace(partial, cached)  # atomic: a concurrent session sees all of it or none
    return cached


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Only warnings and errors from these loggers while a block runs, and no deprecation
    warnings (MLflow's own use of SQLAlchemy is nothing for a project to fix)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
