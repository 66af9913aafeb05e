"""The MLflow model registry as a Dagster resource: versions, aliases and their history.

This is the only module that talks to MLflow. Each candidate is an MLflow run registered as a
model version with the alias `challenger`; `champion` moves only through `promote` and
`rollback`, and every move is appended to the registered model's history as a tag
(`mf.alias_event.<ns timestamp>` holding JSON), so the history lives in the registry itself,
on any MLflow backend, and "what served on date D, and why" has an answer.

mlflow is imported inside methods: it costs seconds, and definitions must load fast.
"""

from __future__ import annotations

import json
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource

from modelfactory.errors import RegistryError
from modelfactory.ml.monitoring import ReferenceProfile
from modelfactory.stores.urls import service_url

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

# Deferred imports: mlflow (~4 s) and skops load with the first registry call: every code server
# imports this module for its resource, and need not pay for mlflow to start.

__all__ = ["AliasMove", "LoggedCandidate", "ModelRegistry", "VersionInfo"]

CHAMPION = "champion"
CHALLENGER = "challenger"
_EVENT_PREFIX = "mf.alias_event."
_REFERENCE_FILE = "reference_profile.json"


@dataclass(frozen=True)
class LoggedCandidate:
    """What the candidate asset hands downstream: where its model lives in the registry."""

    model: str
    version: str
    run_id: str
    experiment_id: str
    data_hash: str
    code_version: str


HOLDOUT_TAG = "mf.holdout."  # + metric name: a version's standard metrics on its holdout


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: str
    run_id: str | None
    tags: dict[str, str]
    created_at: datetime

    @property
    def holdout_metrics(self) -> dict[str, float]:
        """Every standard metric of the task on the holdout, as the evaluation recorded them."""
        return {
            key.removeprefix(HOLDOUT_TAG): float(value)
            for key, value in self.tags.items()
            if key.startswith(HOLDOUT_TAG)
        }


@dataclass(frozen=True)
class AliasMove:
    """One recorded move of the champion alias."""

    event: str  # "promote" | "rollback"
    model: str
    from_version: str | None
    to_version: str
    at: str
    actor: str
    reason: str
    dagster_run_id: str | None = None
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)


class ModelRegistry(ConfigurableResource):
    """MLflow tracking and registry, addressed by role (`model_registry`), not by vendor."""

    tracking_uri: str
    artifact_root: str | None = None
    ui_url: str | None = None  # the MLflow UI's base URL; None: urls.service_url's
    # Prefixes every registered model and experiment name (`<branch>__`), so a branch
    # trains and promotes its own versions and never moves production's champion.
    namespace: str = ""

    def registered_name(self, model: str) -> str:
        """The name of `model` in MLflow (registered model and experiment)."""
        return f"{self.namespace}{model}"

    # -- candidates -------------------------------------------------------------------

    def log_candidate(
        self,
        *,
        model: str,
        estimator: Any,
        X_sample: pd.DataFrame,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
        reference_profile: str | None = None,
    ) -> LoggedCandidate:
        """Log a fitted estimator as an MLflow run and register it as `challenger`.

        `reference_profile` (JSON, see monitoring.profile) summarises the training inputs;
        it is kept with the run so a drift check never reloads the training data.
        """
        import mlflow
        import mlflow.sklearn
        import skops.io
        from mlflow.models import infer_signature

        self._use()
        experiment_id = self._experiment(model)
        with (
            warnings.catch_warnings(),
            mlflow.start_run(experiment_id=experiment_id, tags=tags) as run,
        ):
            # MLflow hints that integer columns cannot hold missing values; schemas.py decides.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            mlflow.log_params({k: _param(v) for k, v in params.items()})
            mlflow.log_params({f"env.{k}": v for k, v in environment().items()})
            mlflow.log_metrics(metrics)
            if reference_profile is not None:
                mlflow.log_text(reference_profile, _REFERENCE_FILE)
            info = mlflow.sklearn.log_model(
                sk_model=estimator,
                name="model",
                registered_model_name=self.registered_name(model),
                signature=infer_signature(X_sample, estimator.predict(X_sample)),
                input_example=X_sample.head(3),
                pip_requirements=pip_requirements(),
                serialization_format="skops",
                skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(estimator)),
            )
        version = str(info.registered_model_version)
        self.tag_version(model, version, tags)
        self._client().set_registered_model_alias(self.registered_name(model), CHALLENGER, version)
        return LoggedCandidate(
            model=model,
            version=version,
            run_id=run.info.run_id,
            experiment_id=experiment_id,
            data_hash=tags.get("mf.data_hash", ""),
            code_version=tags.get("mf.code_version", ""),
        )

    def reference_profile(self, model: str, version: str) -> ReferenceProfile | None:
        """The training-input summary logged with a version (None for versions without one)."""
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        info = self._client().get_model_version(self.registered_name(model), version)
        self._use()
        try:
            text = mlflow.artifacts.load_text(f"runs:/{info.run_id}/{_REFERENCE_FILE}")
        except (MlflowException, OSError):
            return None
        return ReferenceProfile.from_json(text)

    def log_run_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        client = self._client()
        stamp = int(time.time() * 1000)
        for key, value in metrics.items():
            client.log_metric(run_id, key, value, timestamp=stamp)

    def tag_version(self, model: str, version: str, tags: dict[str, str]) -> None:
        client = self._client()
        for key, value in tags.items():
            client.set_model_version_tag(self.registered_name(model), version, key, value)

    def load(self, model: str, version: str) -> Any:
        """The fitted estimator of one registered version."""
        import mlflow.sklearn

        self._use()
        return mlflow.sklearn.load_model(f"models:/{self.registered_name(model)}/{version}")

    # -- aliases ----------------------------------------------------------------------

    def version_by_alias(self, model: str, alias: str) -> VersionInfo | None:
        return self._found(model, "get_model_version_by_alias", alias)

    def version(self, model: str, version: str) -> VersionInfo | None:
        return self._found(model, "get_model_version", version)

    def existing_version(self, model: str, version: str) -> VersionInfo:
        """A version a person named; a clear error when there is none."""
        found = self.version(model, version)
        if found is None:
            raise RegistryError(f"{model} has no version {version} in the registry")
        return found

    def _found(self, model: str, lookup: str, key: str) -> VersionInfo | None:
        """One version by number or alias; None when MLflow has no such model or version."""
        from mlflow.exceptions import MlflowException

        try:
            mv = getattr(self._client(), lookup)(self.registered_name(model), key)
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                return None
            raise
        return _version_info(model, mv)

    def run_params(self, run_id: str) -> dict[str, str]:
        """The params a version's run logged (strings, as MLflow keeps them)."""
        return dict(self._client().get_run(run_id).data.params)

    def champion(self, model: str) -> VersionInfo | None:
        return self.version_by_alias(model, CHAMPION)

    def champions(self, models: Sequence[str]) -> dict[str, str]:
        """Each of `models`' champion version, from one registry search (a page per 1,000
        registered models: the aliases come with each model) instead of one alias lookup
        per model: what an endpoint serving many models asks. Models without a champion, or
        not registered yet, are absent."""
        wanted = {self.registered_name(model): model for model in models}
        # The namespace narrows the search; its `_` matches any character in LIKE, so the
        # names are still compared exactly below.
        prefix = self.namespace if self.namespace and "'" not in self.namespace else ""
        client, found, token = self._client(), {}, None
        while True:
            page = client.search_registered_models(
                filter_string=f"name LIKE '{prefix}%'" if prefix else None,
                max_results=1000,
                page_token=token,
            )
            for registered in page:
                model = wanted.get(registered.name)
                version = (registered.aliases or {}).get(CHAMPION)
                if model is not None and version is not None:
                    found[model] = str(version)
            token = page.token
            if not token:
                return found

    def latest_version(self, model: str) -> VersionInfo | None:
        versions = self._client().search_model_versions(f"name = '{self.registered_name(model)}'")
        if not versions:
            return None
        return _version_info(model, max(versions, key=lambda mv: int(mv.version)))

    def promote(
        self,
        model: str,
        version: str,
        *,
        expected_current: str | None,
        actor: str,
        reason: str,
        dagster_run_id: str | None = None,
        metrics_before: dict[str, float] | None = None,
        metrics_after: dict[str, float] | None = None,
    ) -> AliasMove:
        """Move `champion` to `version`, refusing if it moved since the caller compared."""
        current = self.champion(model)
        current_version = current.version if current else None
        if current_version != expected_current:
            raise RegistryError(
                f"{model}: champion is now v{current_version}, but the evaluation compared "
                f"against v{expected_current}; re-run the evaluation before promoting"
            )
        move = AliasMove(
            event="promote",
            model=model,
            from_version=current_version,
            to_version=version,
            at=_now(),
            actor=actor,
            reason=reason,
            dagster_run_id=dagster_run_id,
            metrics_before=metrics_before or {},
            metrics_after=metrics_after or {},
        )
        self._move_champion(move)
        return move

    def rollback(
        self,
        model: str,
        *,
        actor: str,
        reason: str = "manual rollback",
        to_version: str | None = None,
        expected_current: str | None = None,
    ) -> AliasMove:
        """Put back the champion that the current one replaced by promotion.

        `to_version` names the version to put back instead (a canary rolls back to the
        version that served while it was tried); `expected_current` refuses the move if the
        champion changed since the caller looked.
        """
        current = self.champion(model)
        if current is None:
            raise RegistryError(f"{model}: has no champion, so there is nothing to roll back")
        if expected_current is not None and current.version != expected_current:
            raise RegistryError(
                f"{model}: champion is now v{current.version}, not v{expected_current}; "
                "nothing rolled back"
            )
        promoted_in = [
            m
            for m in self.history(model)
            if m.event == "promote" and m.to_version == current.version
        ]
        previous = to_version or (promoted_in[-1].from_version if promoted_in else None)
        if previous is None:
            raise RegistryError(
                f"{model}: champion v{current.version} was the first champion; "
                "there is no earlier one to roll back to"
            )
        move = AliasMove(
            event="rollback",
            model=model,
            from_version=current.version,
            to_version=previous,
            at=_now(),
            actor=actor,
            reason=reason,
        )
        self._move_champion(move)
        self.tag_version(model, current.version, {"mf.rolled_back_at": move.at})
        return move

    def history(self, model: str) -> list[AliasMove]:
        """Every recorded champion move, oldest first."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self._client().get_registered_model(self.registered_name(model)).tags
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise
        events = sorted((k, v) for k, v in tags.items() if k.startswith(_EVENT_PREFIX))
        return [AliasMove(**json.loads(value)) for _, value in events]

    def _move_champion(self, move: AliasMove) -> None:
        """Set the alias, then record it; if recording fails, put the alias back."""
        client, name = self._client(), self.registered_name(move.model)
        client.set_registered_model_alias(name, CHAMPION, move.to_version)
        try:
            client.set_registered_model_tag(
                name, f"{_EVENT_PREFIX}{time.time_ns():020d}", json.dumps(asdict(move))
            )
        except Exception:
            if move.from_version is None:
                client.delete_registered_model_alias(name, CHAMPION)
            else:
                client.set_registered_model_alias(name, CHAMPION, move.from_version)
            raise

    # -- links ------------------------------------------------------------------------

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self._ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"

    def run_url_of(self, run_id: str) -> str:
        """The UI page of a run known only by its id (a version's run, for instance)."""
        return self.run_url(self._client().get_run(run_id).info.experiment_id, run_id)

    def log_card(self, run_id: str, markdown: str, html: str) -> str:
        """Store a model card with the run that made the version it describes, beside the
        model (`model_card.md` and `.html`), replacing an earlier card; returns where."""
        client = self._client()
        client.log_text(run_id, markdown, "model_card.md")
        client.log_text(run_id, html, "model_card.html")
        return f"{client.get_run(run_id).info.artifact_uri}/model_card.md"

    def version_url(self, model: str, version: str) -> str:
        return f"{self._ui_url()}/#/models/{self.registered_name(model)}/versions/{version}"

    def _ui_url(self) -> str:
        return (self.ui_url or service_url("mlflow")).rstrip("/")

    # -- plumbing ---------------------------------------------------------------------

    def _client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _use(self) -> None:
        """Point MLflow's fluent API (start_run, log_model, load_model) at this registry."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def _experiment(self, model: str) -> str:
        client, name = self._client(), self.registered_name(model)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = f"{self.artifact_root.rstrip('/')}/{name}" if self.artifact_root else None
        return client.create_experiment(name, artifact_location=location)


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged scikit-learn model, so it loads the same elsewhere."""
    return [
        f"{pkg}=={metadata.version(pkg)}"
        for pkg in ("mlflow", "scikit-learn", "skops", "pandas", "numpy")
    ]


def environment() -> dict[str, str]:
    """The interpreter and library versions a candidate was trained with."""
    env = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("scikit-learn", "pandas", "numpy", "dagster", "mlflow"):
        env[pkg] = metadata.version(pkg)
    return env


def _version_info(model: str, mv: Any) -> VersionInfo:
    return VersionInfo(
        model=model,
        version=str(mv.version),
        run_id=mv.run_id,
        tags=dict(mv.tags or {}),
        created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
    )


def _param(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
