"""The pytest hooks: each model_projects/<name>/model.yaml is collected as a file of
contract items (modelfactory.testing re-exports these for pytest11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelfactory.errors import ModelFactoryError, ProjectError
from modelfactory.project.loader import import_project, load_project
from modelfactory.testing.contracts import CONTRACTS
from modelfactory.testing.project_run import ProjectRun

__all__ = ["ContractFile", "ContractItem", "pytest_collect_file", "pytest_configure"]


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
        run = ProjectRun(project, self.config)
        for name in CONTRACTS:
            yield ContractItem.from_parent(self, name=name, run=run, error=None)


class ContractItem(pytest.Item):
    """One contract of one project."""

    def __init__(
        self, *, run: ProjectRun | None, error: ModelFactoryError | None, **kwargs: Any
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
