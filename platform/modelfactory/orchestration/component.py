"""Model Factory as Dagster Components: model projects in any `dg` project, through defs.yaml.

    defs/models/defs.yaml                       defs/churn/defs.yaml
      type: modelfactory.ModelProjects            type: modelfactory.ModelProject
      attributes:                                 attributes:
        folder: .        # every project below      folder: .    # model.yaml beside it
        include: [risk/*]  # optional globs
        strict: null     # see below

`dg scaffold defs modelfactory.ModelProject churn` writes the second: a defs.yaml and the
files `modelfactory new` writes (project.scaffold.write_project), and seeds the sample its
simulate.py makes (into $MODELFACTORY_HOME/data/churn), so `dg check defs` and `dg dev` load
a model that trains at once.

One location, however many components. Every component of a code location holds its models
in ONE fleet (fleet.py): the first Model Factory component of the component tree builds the
definitions of all of them (`models_definitions`), the others none. So the location keeps
one sensor per concern and one set of resources, as a fleet does, and two components
naming the same model make the second one's error instead of clashing definitions.

Strict or not. A project that fails to load is, by default, its model's error asset
(`<model>/project`, fleet.py) so that the other models still run under `dg dev` and the UI.
Under `dg check defs` / `dagster definitions validate` (Dagster sets
DAGSTER_IS_DEFS_VALIDATION_CLI=1) or with `strict: true` it is an error naming the file, the
field and the message, so a team's CI fails on a broken model; `strict: false` never fails.
"""

# No `from __future__ import annotations`: Resolvable reads the dataclass fields' types at
# run time, and postponed annotations would hand it strings.
import os
import warnings
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Self

from dagster import (
    BetaWarning,
    Component,
    ComponentLoadContext,
    ComponentTree,
    Definitions,
    Resolvable,
    Scaffolder,
    ScaffoldRequest,
    scaffold_component,
    scaffold_with,
)
from pydantic import BaseModel

from modelfactory.errors import ProjectError
from modelfactory.orchestration.fleet import (
    BrokenProject,
    find_projects,
    load_projects,
    models_definitions,
)
from modelfactory.orchestration.runs import seed_data
from modelfactory.project.loader import load_project
from modelfactory.project.scaffold import ProjectAnswers, check_name, write_project

__all__ = [
    "VALIDATION_ENV",
    "ModelProject",
    "ModelProjectParams",
    "ModelProjectScaffolder",
    "ModelProjects",
    "ModelProjectsScaffolder",
    "load_defs_folder",
]

VALIDATION_ENV = "DAGSTER_IS_DEFS_VALIDATION_CLI"  # set by `dg check defs`, definitions validate


class ModelFactoryComponent(Component):
    """What both component types share: the folder of their defs.yaml, their projects'
    folders, their strictness, and building the location's one fleet."""

    _defs_folder: Path | None = None  # the defs.yaml's folder, set when Dagster loads it
    strict: bool | None

    @abstractmethod
    def project_roots(self, defs_folder: Path) -> list[Path]:
        """The folders holding this component's model.yaml files."""

    @classmethod
    def load(cls, attributes: BaseModel | None, context: ComponentLoadContext) -> Self:
        # The first component builds every component's models, so each one keeps where its
        # own defs.yaml is: its relative `folder` means that folder's.
        component = super().load(attributes, context)
        component._defs_folder = context.path
        return component

    def is_strict(self) -> bool:
        """`strict` if set, else whether Dagster is validating definitions (dg check defs)."""
        if self.strict is not None:
            return self.strict
        return os.environ.get(VALIDATION_ENV) == "1"

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        """Every Model Factory model of the code location, if this is its first component."""
        peers = _peers(self, context)
        if peers[0] is not self:
            return Definitions()
        roots: list[Path] = []
        strict: set[Path] = set()
        for peer in peers:
            for root in peer.project_roots(peer._defs_folder or context.path):
                if root not in roots:
                    roots.append(root)
                if peer.is_strict():
                    strict.add(root)
        projects, broken = load_projects(roots)
        failing = [b for b in broken if b.root in strict]
        if failing:
            raise ProjectError(strict_message(failing))
        return models_definitions(projects, broken)


class ModelProjectsScaffolder(Scaffolder):
    """`dg scaffold defs modelfactory.ModelProjects models`: a folder for many models, whose
    defs.yaml says where they are; `dg scaffold defs modelfactory.ModelProject models/churn`
    (or `modelfactory new`'s files copied in) then adds each."""

    def scaffold(self, request: ScaffoldRequest) -> None:
        scaffold_component(request, {"folder": "."})


@scaffold_with(ModelProjectsScaffolder)
@dataclass
class ModelProjects(ModelFactoryComponent, Resolvable):
    """Every Model Factory model project under a folder, in this code location.

    `folder` is relative to this defs.yaml (a folder holding model.yaml is a project; team
    folders may nest); `include` keeps the projects whose path relative to it matches one of
    its globs; `strict` (true/false, unset: only under `dg check defs`) makes a project that
    does not load an error instead of its `<model>/project` asset.
    """

    folder: str = "."
    include: list[str] | None = None
    strict: bool | None = None

    def project_roots(self, defs_folder: Path) -> list[Path]:
        return find_projects(defs_folder / self.folder, self.include)


class ModelProjectParams(BaseModel):
    """`dg scaffold defs modelfactory.ModelProject <name> --task classification ...`: the
    answers `modelfactory new` asks for, the others at its defaults."""

    task: Literal["regression", "classification"] = "regression"
    target: str = ""
    metric: str = ""
    owner: str = "team:data-science"
    description: str = ""


class ModelProjectScaffolder(Scaffolder[ModelProjectParams]):
    """Writes the model project `modelfactory new` writes, with a defs.yaml beside it."""

    @classmethod
    def get_scaffold_params(cls) -> type[ModelProjectParams]:
        return ModelProjectParams

    def scaffold(self, request: ScaffoldRequest[ModelProjectParams]) -> None:
        folder = Path(request.target_path)
        if (folder / "model.yaml").exists():
            raise ProjectError(f"{folder}/model.yaml exists: that folder is a model already")
        if not folder.exists():  # refuse a name that cannot be a package or a Dagster group
            check_name(folder.name, folder.parent)
        params = request.params or ModelProjectParams()
        answers = ProjectAnswers(name=folder.name, **params.model_dump())
        write_project(answers, folder)
        # its sample data, as `modelfactory new` + `modelfactory train` have it, so that the
        # first materialization in `dg dev` trains (load_raw reads $MODELFACTORY_HOME/data)
        seed_data(load_project(folder))
        scaffold_component(request, {"folder": "."})


@scaffold_with(ModelProjectScaffolder)
@dataclass
class ModelProject(ModelFactoryComponent, Resolvable):
    """One Model Factory model project: model.yaml, features.py, train.py, schemas.py.

    `folder` holds them, relative to this defs.yaml (beside it by default; `dg scaffold defs
    modelfactory.ModelProject <name>` writes them there); `strict` as for ModelProjects.
    """

    folder: str = "."
    strict: bool | None = None

    def project_roots(self, defs_folder: Path) -> list[Path]:
        return [(defs_folder / self.folder).resolve()]


def _peers(component: ModelFactoryComponent, context: ComponentLoadContext) -> list[Any]:
    """Every Model Factory component of `component`'s tree, in the tree's order; just
    `component` when it was not loaded from a defs.yaml (made in Python and built on its own,
    as dagster.build_defs_for_component does: its test tree has no defs folder to list)."""
    if component._defs_folder is None:
        return [component]
    found = context.component_tree.get_all_components(of_type=ModelFactoryComponent)
    return found if any(c is component for c in found) else [component]


def strict_message(broken: Sequence[BrokenProject]) -> str:
    """What `dg check defs` prints for strict components' broken projects: file, field and
    `modelfactory check`'s message for each."""
    lines = [f"{len(broken)} model project(s) do not load:"]
    for b in broken:
        lines.append(f"  {b.name}: file {b.file}, field {b.field or '(none)'}: {b.message}")
    lines.append(
        "Fix the file, or set `strict: false` in the defs.yaml to show a broken model as "
        "its <model>/project asset instead (the other models still load)."
    )
    return "\n".join(lines)


def load_defs_folder(folder: Path | str) -> Definitions:
    """The definitions of the components declared by `folder`'s defs.yaml, loaded by
    Dagster's own component loader, where `folder` is not in a dg project (this repository's
    model_projects/definitions.py, which workspace.yaml points at)."""
    folder = Path(folder).resolve()
    module = ModuleType(folder.name)  # the defs module dg would import; only its path is read
    module.__file__ = None
    module.__path__ = [str(folder)]
    tree = ComponentTree.from_module(defs_module=module, project_root=folder.parent)
    with warnings.catch_warnings():  # the loader's own code references are beta; not ours to fix
        warnings.simplefilter("ignore", BetaWarning)
        return tree.build_defs()
