"""Which profile this process runs in and which branch it is isolated to, decided here once.

`MODELFACTORY_PROFILE` chooses: `local` (the default: sqlite, DuckDB and files under
MODELFACTORY_HOME) or `production` (Snowflake, S3, an MLflow server, Postgres). Nothing else
reads it; stores/home.py builds each role's store from the `Profile` this module returns,
and model projects never know which one they got.

`MODELFACTORY_BRANCH` isolates a branch in either profile: it prefixes the warehouse schema,
the registered model names and the MLflow experiments, so a feature branch trains and
promotes its own versions and never moves production's champion. In CI it defaults to the
branch being built; `main`, `master` and no branch at all are production itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from modelfactory.errors import ProfileError

__all__ = [
    "BRANCH_ENV",
    "PROFILE_ENV",
    "Production",
    "Profile",
    "current_branch",
    "current_profile",
]

PROFILE_ENV = "MODELFACTORY_PROFILE"
BRANCH_ENV = "MODELFACTORY_BRANCH"
_PRODUCTION_BRANCHES = {"", "main", "master"}
# Where CI services name the branch being built (GitHub pull request, GitHub push,
# GitLab, Buildkite, CircleCI), read only when MODELFACTORY_BRANCH is unset.
_CI_BRANCH_VARIABLES = (
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "CI_COMMIT_REF_NAME",
    "BUILDKITE_BRANCH",
    "CIRCLE_BRANCH",
)


@dataclass(frozen=True)
class Production:
    """The production profile's settings, all from environment variables (deploy/.env.example)."""

    snowflake_account: str
    snowflake_user: str
    snowflake_database: str
    snowflake_warehouse: str | None
    snowflake_role: str | None
    s3_bucket: str
    s3_prefix: str
    mlflow_tracking_uri: str
    serving_db: str

    REQUIRED = {
        "snowflake_account": "SNOWFLAKE_ACCOUNT",
        "snowflake_user": "SNOWFLAKE_USER",
        "snowflake_database": "SNOWFLAKE_DATABASE",
        "s3_bucket": "MODELFACTORY_S3_BUCKET",
        "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
        "serving_db": "MODELFACTORY_SERVING_DB",
    }

    @classmethod
    def from_env(cls) -> Production:
        """Read every variable; name all the missing ones at once."""
        missing = [env for env in cls.REQUIRED.values() if not os.environ.get(env)]
        if missing:
            raise ProfileError(
                f"{PROFILE_ENV}=production needs {', '.join(missing)}; "
                "deploy/.env.example describes every variable"
            )
        return cls(
            **{field: os.environ[env] for field, env in cls.REQUIRED.items()},
            snowflake_warehouse=os.environ.get("SNOWFLAKE_WAREHOUSE") or None,
            snowflake_role=os.environ.get("SNOWFLAKE_ROLE") or None,
            s3_prefix=(os.environ.get("MODELFACTORY_S3_PREFIX") or "modelfactory").strip("/"),
        )


@dataclass(frozen=True)
class Profile:
    name: Literal["local", "production"]
    branch: str  # normalised; "" is production's own

    @property
    def namespace(self) -> str:
        """The prefix of this branch's names: `<branch>__`, or nothing on production's."""
        return f"{self.branch}__" if self.branch else ""

    def schema(self, model: str) -> str:
        """The warehouse schema of one model on this branch."""
        return f"{self.namespace}{model}"

    @property
    def production(self) -> Production:
        if self.name != "production":
            raise ProfileError(f"the {self.name} profile has no production settings")
        return Production.from_env()


def current_profile() -> Profile:
    """The profile and branch the environment chooses (read at each call, never at import)."""
    name = (os.environ.get(PROFILE_ENV) or "local").strip().lower()
    if name not in {"local", "production"}:
        raise ProfileError(
            f"{PROFILE_ENV} must be 'local' or 'production', got {os.environ[PROFILE_ENV]!r}"
        )
    return Profile(name=name, branch=current_branch())  # type: ignore[arg-type]


def current_branch() -> str:
    """MODELFACTORY_BRANCH, else the branch CI is building, as a safe identifier part."""
    branch = os.environ.get(BRANCH_ENV)
    if branch is None and os.environ.get("CI"):
        branch = next((os.environ[v] for v in _CI_BRANCH_VARIABLES if os.environ.get(v)), "")
    return branch_identifier(branch or "")


def branch_identifier(branch: str) -> str:
    """`feature/New-Model` -> `feature_new_model`: usable in schema, model and file names."""
    cleaned = re.sub(r"[^a-z0-9]+", "_", branch.strip().lower()).strip("_")
    if cleaned in _PRODUCTION_BRANCHES:
        return ""
    if cleaned[:1].isdigit():
        cleaned = f"b_{cleaned}"
    return cleaned[:40]
