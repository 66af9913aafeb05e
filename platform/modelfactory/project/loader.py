"""Finds and loads model projects: a validated spec plus the project's plain functions.

A project is a folder under model_projects/ with the same files everywhere:

    model.yaml   the spec            features.py  load_raw(data_dir), build_features(raw)
    train.py     train(X, y, params) schemas.py   RawSchema, FeatureSchema (pandera)
    simulate.py  optional: seed_data(data_dir) and synthetic data with known parameters

Only model.yaml is read when Dagster loads definitions. The Python files are imported when a
step first needs them, so a code location loads in a fraction of a second instead of paying
for pandas, pandera and scikit-learn imports on every reload.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import subprocess
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from modelfactory.errors import ModelFactoryError, ProjectError, SpecError
from modelfactory.project.spec import ModelSpec, _display_path, load_spec

__all__ = [
    "ModelProject",
    "discover_projects",
    "find_repo_root",
    "import_project",
    "load_project",
    "projects_dir",
]

REQUIRED_FILES = ("model.yaml", "features.py", "train.py", "schemas.py")
_PACKAGE_ROOT = "modelfactory_projects"


@dataclass(frozen=True)
class ModelProject:
    """One model project on disk; its Python modules load lazily, once."""

    root: Path
    spec: ModelSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def shown(self, filename: str) -> str:
        """A project file's path as people see it in messages."""
        return _display_path(self.root / filename)

    @cached_property
    def code_version(self) -> str:
        """Content hash of the spec and the project's Python files (not its tests).

        Dagster marks downstream assets stale when it changes, and every candidate records it.
        """
        digest = hashlib.sha256()
        for path in [*sorted(self.root.glob("*.py")), self.root / "model.yaml"]:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:12]

    @cached_property
    def git_sha(self) -> str | None:
        """The commit the project's folder is at, or None outside a git checkout."""
        return self.git("rev-parse", "HEAD")

    def git(self, *args: str) -> str | None:
        """A git command's output, run in the project's folder; None when git cannot answer
        (not a checkout, an unknown commit, no git)."""
        try:
            result = subprocess.run(
                ["git", *args],
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() or None if result.returncode == 0 else None

    def module(self, name: str) -> types.ModuleType:
        """Import one of the project's files as `modelfactory_projects.<project>.<name>`.

        The project is a package of its own, so its files may import each other relatively
        (`from .simulate import simulate`) without the repository being on sys.path.
        """
        package = _ensure_package(self)
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{package}.{name}":
                raise ProjectError(f"{self.shown(name + '.py')}: file not found") from None
            raise

    def function(self, module: str, name: str) -> Callable[..., Any]:
        """A function the platform calls, with a clear error when the project lacks it."""
        fn = getattr(self.module(module), name, None)
        if not callable(fn):
            raise ProjectError(
                f"{self.shown(module + '.py')}: defines no function {name!r}; "
                f"the platform calls {module}.{name}(...) to run this model"
            )
        return fn

    def schema(self, name: str) -> Any:
        """A pandera schema from schemas.py (a DataFrameModel class or a DataFrameSchema)."""
        schema = getattr(self.module("schemas"), name, None)
        if schema is None or not hasattr(schema, "validate"):
            raise ProjectError(
                f"{self.shown('schemas.py')}: defines no pandera schema {name!r} "
                "(a pandera.pandas DataFrameModel or DataFrameSchema)"
            )
        return schema

    def params(self, values: dict[str, Any] | None = None) -> Any:
        """model.yaml's `params` (or `values`, a version's recorded ones), typed by train.py's
        `Params` dataclass where it has one."""
        values = dict(self.spec.params if values is None else values)
        params_type = getattr(self.module("train"), "Params", None)
        if params_type is None:
            return values
        if not dataclasses.is_dataclass(params_type):
            raise ProjectError(f"{self.shown('train.py')}: Params must be a dataclass")
        known = {f.name for f in dataclasses.fields(params_type)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SpecError(
                f"{self.shown('model.yaml')}: params.{unknown[0]} is not a field of "
                f"train.Params (known: {', '.join(sorted(known))})"
            )

        try:
            return TypeAdapter(params_type).validate_python(values)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in error["loc"])
            raise SpecError(
                f"{self.shown('model.yaml')}: params.{field}: {error['msg'].lower()}, "
                f"got {error['input']!r}"
            ) from None

    @property
    def has_simulator(self) -> bool:
        return (self.root / "simulate.py").is_file()


def load_project(root: Path | str) -> ModelProject:
    """Load and validate a project folder; the error names the first thing missing."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ProjectError(f"{_display_path(root)}: no such model project folder")
    missing = [f for f in REQUIRED_FILES if not (root / f).is_file()]
    spec = load_spec(root / "model.yaml")
    if missing:
        raise ProjectError(
            f"{_display_path(root)}: missing {', '.join(missing)}; "
            f"every model project has {', '.join(REQUIRED_FILES)}"
        )
    return ModelProject(root=root, spec=spec)


# What the platform calls in a project's files (module -> functions); its schemas are below.
CALLED = {"features": ("load_raw", "build_features"), "train": ("train",)}
SCHEMAS = ("RawSchema", "FeatureSchema")


def import_project(project: ModelProject) -> ModelProject:
    """Import the project's files and look up what the platform calls, as its first run would.

    Loading a code location calls this, so a broken import, a missing function or schema, or
    params that train.Params refuses show as the model's error before anything runs; the
    error names the file and line (or field). Costs the project's imports, once per process.
    """
    modules = [*CALLED, "schemas", *(["simulate"] if project.has_simulator else [])]
    for module in modules:
        try:
            project.module(module)
        except ModelFactoryError:
            raise
        except Exception as exc:  # any failure while importing is the project's error
            raise ProjectError(_import_failure(project, module, exc)) from exc
    for module, functions in CALLED.items():
        for function in functions:
            project.function(module, function)
    for schema in SCHEMAS:
        project.schema(schema)
    project.params()
    return project


def _import_failure(project: ModelProject, module: str, exc: Exception) -> str:
    """`<file>, line N: <Error>: <message>`, at the deepest line of the project's own files."""
    where = project.shown(f"{module}.py")
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f"{_display_path(Path(exc.filename))}, line {exc.lineno}: SyntaxError: {exc.msg}"
    own = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename).resolve().is_relative_to(project.root)
    ]
    if own:
        where = f"{_display_path(Path(own[-1].filename))}, line {own[-1].lineno}"
    return f"{where}: {type(exc).__name__}: {exc}"


def projects_dir() -> Path:
    return find_repo_root() / "model_projects"


def discover_projects(
    folder: Path | None = None,
) -> tuple[list[ModelProject], dict[str, ModelFactoryError]]:
    """Every project under model_projects/, plus the ones that failed to load and why."""
    folder = folder or projects_dir()
    projects, broken = [], {}
    for candidate in sorted(p for p in folder.iterdir() if (p / "model.yaml").exists()):
        try:
            projects.append(load_project(candidate))
        except ModelFactoryError as exc:
            broken[candidate.name] = exc
    return projects, broken


def _ensure_package(project: ModelProject) -> str:
    """Register the project's folder as a package so its modules import by name.

    The package is `modelfactory_projects.<name>`; a second folder with the same project name
    (a copy in a test, a second checkout) gets a suffixed package of its own, so neither
    replaces the other's modules while they are in use.
    """
    if _PACKAGE_ROOT not in sys.modules:
        root = types.ModuleType(_PACKAGE_ROOT)
        root.__path__ = []
        sys.modules[_PACKAGE_ROOT] = root
    package = f"{_PACKAGE_ROOT}.{project.name}"
    existing = sys.modules.get(package)
    if existing is not None and list(existing.__path__) != [str(project.root)]:
        suffix = hashlib.sha256(str(project.root).encode()).hexdigest()[:8]
        package = f"{package}_{suffix}"
        existing = sys.modules.get(package)
    if existing is None:
        existing = types.ModuleType(package)
        existing.__path__ = [str(project.root)]
        existing.__file__ = str(project.root / "__init__.py")
        sys.modules[package] = existing
    if getattr(existing, "__mf_code_version__", None) != project.code_version:
        # The files changed since they were imported: forget the old modules, so the next
        # step runs the project as it is now, not as this process first saw it.
        for loaded in [m for m in sys.modules if m.startswith(f"{package}.")]:
            del sys.modules[loaded]
        existing.__mf_code_version__ = project.code_version  # type: ignore[attr-defined]
    return package


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` holding workspace.yaml (else `start` itself)."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "workspace.yaml").is_file():
            return folder
    return start
