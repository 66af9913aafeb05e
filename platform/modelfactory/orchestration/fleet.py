"""A fleet: every model project under a folder in ONE Dagster code location, each isolated.

    model_projects/                    fleet_definitions("model_projects")
      churn/model.yaml ...          -> churn/raw, churn/features, ... churn_train, ...
      risk/                            (team folders nest; a folder holding model.yaml is a
        credit/model.yaml ...       ->  project, and its own sub-folders are not searched)
        fraud/model.yaml (broken)   -> fraud/project: the error, and a failing check

A project that does not load (model.yaml unreadable or invalid, a file that fails to import,
a function or schema missing, params that train.Params refuses) becomes that model's error:
an asset `<model>/project` in group `<model>` whose description and metadata carry the file,
the field (or line) and the message, with a blocking check that fails with the message when
run. Every other model loads and runs. One sensor, `modelfactory_project_errors`, announces
each distinct error once through the notifier, and once more when the model loads again.

Resources are the location's, by role (resources.location_resources); runs of one model queue
behind each other through the pool `modelfactory/<model>` every asset carries.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    DefaultSensorStatus,
    Definitions,
    JobDefinition,
    MaterializeResult,
    MetadataValue,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    sensor,
)

from modelfactory.errors import ModelFactoryError
from modelfactory.orchestration.assets import (
    STEPS,
    build_assets,
    drift_report_job_name,
    live_metrics_job_name,
    predict_job_name,
    refresh_job_name,
    train_job_name,
)
from modelfactory.orchestration.resources import location_resources
from modelfactory.orchestration.run_tags import model_pool, run_tags
from modelfactory.orchestration.schedules import build_schedules
from modelfactory.orchestration.sensors import build_sensors
from modelfactory.project.loader import ModelProject, import_project, load_project
from modelfactory.project.spec import _display_path
from modelfactory.stores.notify import Alert, Notifier
from modelfactory.stores.urls import dagster_asset_url

__all__ = [
    "ERRORS_SENSOR",
    "BrokenProject",
    "find_projects",
    "fleet_definitions",
    "load_fleet",
    "load_projects",
    "model_jobs",
    "models_definitions",
]

ERRORS_SENSOR = "modelfactory_project_errors"
SKIPPED_FOLDERS = {"tests", "__pycache__", "node_modules"}  # and any starting with . or _


@dataclass(frozen=True)
class BrokenProject:
    """A model project that did not load, and why, as `modelfactory check` says it."""

    name: str  # the folder's name: model.yaml may be what is broken
    root: Path
    message: str  # `<file>: <field> ...` or `<file>, line N: <Error>: ...`

    @property
    def file(self) -> str:
        """The file the message names (its first part), else the project's folder."""
        head = re.split(r":|, line \d+", self.message, maxsplit=1)[0]
        return head if head.endswith((".py", ".yaml", ".yml")) else _display_path(self.root)

    @property
    def field(self) -> str:
        """Where in the file: a spec field (`metric.direction`), a line, or '' if unknown."""
        rest = self.message.removeprefix(self.file).lstrip(":, ")
        if line := re.match(r"line \d+", rest):
            return line.group(0)
        if line := re.search(r"\((line \d+, column \d+)\)", rest):
            return line.group(1)
        if name := re.match(r"defines no (?:function|pandera schema) '(\w+)'", rest):
            return name.group(1)  # schemas.py:FeatureSchema, train.py:train
        field = re.match(r"[a-z_]\w*(\.\w+)*(?=:| (is|must|names)\b)", rest)
        return field.group(0) if field else ""

    @property
    def key(self) -> AssetKey:
        return AssetKey([self.name, "project"])


def find_projects(folder: Path | str, include: Sequence[str] | None = None) -> list[Path]:
    """Every folder holding a model.yaml under `folder`, sorted; with `include`, only those
    whose path relative to `folder` matches one of its globs (`risk/*`, `churn`)."""
    folder = Path(folder).resolve()
    found = []
    for here, dirs, files in os.walk(folder):
        if "model.yaml" in files:
            found.append(Path(here))
            dirs.clear()  # a project's sub-folders (tests/, data/) hold no projects
            continue
        dirs[:] = [d for d in dirs if d not in SKIPPED_FOLDERS and not d.startswith((".", "_"))]
    if include:
        found = [
            p
            for p in found
            if any(fnmatch.fnmatch(p.relative_to(folder).as_posix(), g) for g in include)
        ]
    return sorted(found)


def load_fleet(
    folder: Path | str, include: Sequence[str] | None = None
) -> tuple[list[ModelProject], list[BrokenProject]]:
    """The projects under `folder` that load, and those that do not with their error."""
    return load_projects(find_projects(folder, include))


def load_projects(roots: Iterable[Path]) -> tuple[list[ModelProject], list[BrokenProject]]:
    """The projects at `roots` (folders holding model.yaml) that load, and those that do not
    with their error; a name taken twice is the second one's error. The Model Factory
    components (component.py) hand every root of a dg project's components here at once."""
    projects: list[ModelProject] = []
    broken: list[BrokenProject] = []
    for root in roots:
        taken = {p.name for p in projects} | {b.name for b in broken}
        try:
            project = import_project(load_project(root))
        except ModelFactoryError as exc:
            broken.append(BrokenProject(_free_name(root.name, taken), root, str(exc)))
            continue
        if project.name in taken:
            message = f"{project.shown('model.yaml')}: name {project.name!r} is another project's"
            broken.append(BrokenProject(_free_name(project.name, taken), root, message))
            continue
        projects.append(project)
    return projects, broken


def fleet_definitions(folder: Path | str, *, include: Sequence[str] | None = None) -> Definitions:
    """One code location for every model project under `folder` (see the module docstring);
    `include` (globs of paths relative to `folder`) keeps a part of it, to split by team."""
    projects, broken = load_fleet(folder, include)
    return models_definitions(projects, broken)


def models_definitions(
    projects: Sequence[ModelProject], broken: Sequence[BrokenProject] | None = None
) -> Definitions:
    """The definitions of a code location holding `projects`. With `broken` (a fleet's, even
    empty), their errors and the sensor announcing them; without, just the projects (one
    model's definitions, as `build_definitions` gives them)."""
    models = [(project, model_jobs(project)) for project in projects]
    errors = [] if broken is None else [errors_sensor(broken, [p.name for p in projects])]
    return Definitions(
        assets=[
            *(a for project in projects for a in build_assets(project)),
            *(_error_asset(b) for b in broken or ()),
        ],
        jobs=[job for _, jobs in models for job in jobs.values() if job is not None],
        schedules=[s for project, jobs in models for s in _schedules(project, jobs)],
        sensors=[*build_sensors(models), *errors],
        resources=location_resources(),
        executor=in_process_executor,
    )


def _schedules(project: ModelProject, jobs: Mapping[str, JobDefinition | None]) -> list[Any]:
    return build_schedules(project, jobs["train"], jobs["predict"], jobs["refresh"])


def model_jobs(project: ModelProject) -> dict[str, JobDefinition | None]:
    """A model's jobs by role: train, predict, drift_report, live_metrics, and refresh (None
    unless a segmented model's features refresh apart from its daily predictions)."""
    name, spec = project.name, project.spec
    tags = run_tags(spec)  # size, max runtime, one run per model at a time (jobs' tag limit)

    def job(job_name: str, steps: Iterable[str], description: str) -> Any:
        keys = [AssetKey([name, step]) for step in steps]
        selection = AssetSelection.assets(*keys)
        return define_asset_job(job_name, selection=selection, description=description, tags=tags)

    # Fresh features first, in the same job where Dagster allows it: not between a segmented
    # model's segment-partitioned features and its day-and-segment predictions. There the
    # schedule runs the refresh job per segment, and each success scores its days (the
    # <model>_score_refreshed sensor).
    fresh = spec.predictions is None or spec.segments is None
    scored = ("latest features" if fresh else "features of its segment's last refresh") + (
        " of one day" if spec.predictions else ""
    )
    return {
        "train": job(
            train_job_name(name), STEPS, f"Train, evaluate and (per the gate) promote {name}."
        ),
        "predict": job(
            predict_job_name(name),
            ("raw", "features", "predictions") if fresh else ("predictions",),
            f"Score {name}'s {scored} with the champion, into the warehouse.",
        ),
        # The evidence jobs refresh the model card after it: its drift and live lines read them.
        "drift_report": job(
            drift_report_job_name(name),
            ("drift_report", "model_card"),
            f"An Evidently drift report on {name}'s latest captured requests (or the window "
            "the drift sensor judged), then the model card with its drift line.",
        ),
        "live_metrics": job(
            live_metrics_job_name(name),
            ("live_metrics", "model_card"),
            f"{name}'s live metric per version, from predictions and late labels, then the "
            "model card with its live line.",
        ),
        "refresh": None
        if fresh
        else job(
            refresh_job_name(name),
            ("raw", "features"),
            f"Refresh one segment's raw data and features of {name}; a scheduled run "
            "then scores the days it was run for.",
        ),
    }


def _error_asset(broken: BrokenProject) -> AssetsDefinition:
    """`<model>/project`: the model's load error, shown where its assets would be."""
    metadata = {
        "error": MetadataValue.md(f"```\n{broken.message}\n```"),
        "file": broken.file,
        "field": broken.field,
        "message": broken.message,
    }

    @asset(
        key=broken.key,
        group_name=broken.name,
        description=f"This model project does not load: {broken.message}",
        metadata=metadata,
        kinds={"python"},
        tags={"modelfactory/model": broken.name, "modelfactory/error": "load"},
        pool=model_pool(broken.name),
        check_specs=[
            AssetCheckSpec(
                "loads",
                asset=broken.key,
                blocking=True,
                description="The project's model.yaml and files load; fails with the error.",
            )
        ],
    )
    def project_error() -> MaterializeResult:
        return MaterializeResult(
            metadata=metadata,
            check_results=[
                AssetCheckResult(
                    check_name="loads",
                    passed=False,
                    severity=AssetCheckSeverity.ERROR,
                    description=broken.message,
                    metadata={"file": broken.file, "field": broken.field},
                )
            ],
        )

    return project_error


def errors_sensor(broken: Sequence[BrokenProject], loaded: Sequence[str]) -> SensorDefinition:
    """One sensor for the location: each distinct load error is announced once, and once
    more when its model loads again. The cursor maps model -> a digest of its error."""
    errors = {b.name: b for b in broken}

    @sensor(
        name=ERRORS_SENSOR,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Announces a model project that fails to load, and when it loads again.",
    )
    def project_errors(context: SensorEvaluationContext, notifier: Notifier) -> SkipReason:
        announced: dict[str, str] = json.loads(context.cursor or "{}")
        now = {name: _digest(b.message) for name, b in errors.items()}
        for name in sorted(now):
            if announced.get(name) != now[name]:
                notifier.send(_broken_alert(errors[name]))
        for name in sorted(set(announced) - set(now)):
            if name in loaded:
                notifier.send(Alert(name, "project_loads", f"{name} loads again", "info"))
        context.update_cursor(json.dumps(now, sort_keys=True))
        return SkipReason(
            f"{len(now)} model(s) fail to load: {', '.join(sorted(now))}" if now else "all load"
        )

    return project_errors


def _broken_alert(broken: BrokenProject) -> Alert:
    return Alert(
        model=broken.name,
        event="project_broken",
        text=f"{broken.name} does not load: {broken.message}",
        links={"asset": dagster_asset_url(*broken.key.path)},
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _free_name(name: str, taken: set[str]) -> str:
    """`name` as an asset key part, suffixed (`_2`, ...) if another project has it."""
    name = re.sub(r"\W", "_", name) or "project"
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate
