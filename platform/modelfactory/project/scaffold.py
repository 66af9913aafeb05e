"""`modelfactory new`: a model project from templates, ready to test, train, serve and monitor.

The answers (prompted, or given as flags) fill Jinja templates under `templates/project/`:
model.yaml, features.py, train.py, schemas.py, a simulate.py that generates a small sample
with known parameters (so the project trains at once and its tests check the truth is
recovered) and tests/. The project is written to a staging folder, its model.yaml
validated, and only then moved into `model_projects/`; any failure leaves that untouched.
workspace.yaml needs no entry: model_projects/defs.yaml's component (modelfactory.ModelProjects)
holds every project of the folder. `dg scaffold defs modelfactory.ModelProject <name>` writes
the same files through write_project, into a dg project.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelfactory.errors import ProjectError, SpecError
from modelfactory.project.metrics import CATALOGUE
from modelfactory.project.spec import load_spec

__all__ = [
    "TASK_DEFAULTS",
    "ProjectAnswers",
    "check_name",
    "check_target",
    "create_project",
    "render_project",
    "write_project",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TEMPLATES = "templates/project"
TEMPLATE_COLUMNS = ("event_date", "segment", "x1", "x2", "x3")  # the template's own inputs

# target column and metric a new project of each task starts with
TASK_DEFAULTS = {"regression": ("value", "mae"), "classification": ("label", "roc_auc")}


@dataclass(frozen=True)
class ProjectAnswers:
    """What `modelfactory new` asks; every field is also a flag."""

    name: str
    owner: str = "team:data-science"
    description: str = ""
    task: str = "regression"
    target: str = ""
    metric: str = ""
    direction: str = ""
    policy: str = "auto"
    min_improvement: float = 0.01
    test_size: float = 0.2
    cpus: float = 1
    memory: str = "2Gi"
    timeout: str = "30m"
    retrain: str | None = "0 3 * * 1"
    predict: str | None = None

    def completed(self) -> ProjectAnswers:
        """The answers with task-dependent defaults filled in."""
        target, metric = TASK_DEFAULTS.get(self.task, ("target", ""))
        metric = self.metric or metric
        direction = self.direction or (CATALOGUE[metric].direction if metric in CATALOGUE else "")
        return ProjectAnswers(
            **{
                **asdict(self),
                "description": self.description or f"{self.name}: a {self.task} model.",
                "target": self.target or target,
                "metric": metric,
                "direction": direction,
            }
        )


def check_name(name: str, projects: Path) -> None:
    """Refuse a name that cannot be a project folder, a Python package and a Dagster group."""
    shown = f"{projects.name}/{name}"
    if not name.strip():
        raise ProjectError("a model needs a name, e.g. `modelfactory new churn`")
    if "/" in name or "\\" in name or ".." in name or os.sep in name:
        raise ProjectError(
            f"{name!r} is not a model name: it becomes a folder inside {projects.name}/, "
            "so it cannot hold path separators or '..'"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ProjectError(f"{name!r} is a Python keyword; model modules import by name")
    if not _NAME.match(name):
        raise ProjectError(
            f"{name!r} is not a model name: use lowercase letters, digits and underscores, "
            "starting with a letter, at most 64 (it names a package, a Dagster group and a "
            "registered model)"
        )
    if (projects / name).exists():
        raise ProjectError(f"{shown} already exists; pick another name or edit that project")


def check_target(target: str) -> None:
    """The target becomes a pandera field and a DataFrame column beside the template's own."""
    if not target.isidentifier() or keyword.iskeyword(target):
        raise ProjectError(
            f"target {target!r} must be a Python identifier (letters, digits, underscores; "
            "not a keyword): it is a field of schemas.py's FeatureSchema"
        )
    if target in TEMPLATE_COLUMNS:
        raise ProjectError(
            f"target {target!r} is one of the template's input columns "
            f"({', '.join(TEMPLATE_COLUMNS)}); pick another name"
        )


def render_project(answers: ProjectAnswers) -> dict[str, str]:
    """Every file of the new project, by path relative to its folder."""
    # deferred: jinja2 only to write a project; `modelfactory --help` imports this module
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("modelfactory", _TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
        autoescape=False,  # Python and YAML, not HTML
    )
    context = {**asdict(answers), **_derived(answers)}
    files = {}
    for template in env.list_templates(filter_func=lambda path: path.endswith(".j2")):
        target = template.removesuffix(".j2").replace("NAME", answers.name)
        files[target] = env.get_template(template).render(context)
    return files


def create_project(answers: ProjectAnswers, repo: Path) -> Path:
    """Write `model_projects/<name>/`, all or nothing: the fleet's location loads it."""

    answers = answers.completed()
    projects = repo / "model_projects"
    check_name(answers.name, projects)
    check_target(answers.target)
    projects.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=projects))
    try:
        folder = write_project(answers, staging / answers.name)
        final = projects / answers.name
        folder.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def write_project(answers: ProjectAnswers, folder: Path) -> Path:
    """Render the project's files into `folder` (made if missing), compiled and its model.yaml
    validated. `modelfactory new` writes into a staging folder through this, and the
    `modelfactory.ModelProject` component's scaffolder (`dg scaffold defs`) into the folder
    dg chose, so both write the same project."""
    answers = answers.completed()
    check_target(answers.target)
    for relative, text in render_project(answers).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    _compile(folder)
    try:
        load_spec(folder / "model.yaml")
    except SpecError as exc:  # name the answers the user gave, not the staging path
        problems = [line.split(": ", 1)[-1] for line in str(exc).splitlines()]
        raise SpecError(
            "\n".join(f"modelfactory new {answers.name}: {p}" for p in problems)
        ) from None
    return folder


def _compile(folder: Path) -> None:
    """Every rendered module must compile: a template bug never reaches model_projects/."""
    for module in folder.rglob("*.py"):
        try:
            compile(module.read_text(), str(module.relative_to(folder)), "exec")
        except SyntaxError as exc:
            raise ProjectError(
                f"the template rendered invalid Python in {exc.filename}, line {exc.lineno}: "
                f"{exc.msg}"
            ) from None


def _derived(answers: ProjectAnswers) -> dict[str, Any]:
    bound = "max" if answers.direction == "minimize" else "min"
    crons = [(k, v) for k, v in (("retrain", answers.retrain), ("predict", answers.predict)) if v]
    return {
        "schedule": "{" + ", ".join(f'{k}: "{v}"' for k, v in crons) + "}",
        "params": "{alpha: 1.0}" if answers.task == "regression" else "{C: 1.0}",
        "threshold_example": f"{{{answers.metric}: {{{bound}: ...}}}}",
    }
