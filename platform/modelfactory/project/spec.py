"""ModelSpec: the validated contents of a model project's model.yaml.

Everything a model may vary lives in its model.yaml and is checked here, before Dagster ever
sees it, so a mistake surfaces as one line naming the file, the field and what was expected:

    model_projects/churn/model.yaml: metric.direction must be 'maximize' or 'minimize', got 'up'
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from modelfactory.errors import SpecError
from modelfactory.project.metrics import CATALOGUE

__all__ = [
    "Bounds",
    "CanarySpec",
    "DriftSpec",
    "LiveMetricSpec",
    "MetricSpec",
    "ModelSpec",
    "PredictionsSpec",
    "PromotionSpec",
    "ReplaySpec",
    "ResourcesSpec",
    "ScheduleSpec",
    "SegmentsSpec",
    "ServingSpec",
    "SlicesSpec",
    "SplitSpec",
    "load_spec",
]

_IDENTIFIER = r"^[a-z][a-z0-9_]*$"
_CRON_FIELD = re.compile(
    r"^(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*$"
)
_OWNER = re.compile(r"^([^@\s]+@[^@\s]+\.[^@\s]+|team:[A-Za-z0-9_.-]+)$")

ColumnName = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
# A segment names a partition, a registered model (`<model>.<segment>`) and a table
# (`<model>__<segment>_inference_log`): lower case, so Snowflake's case folding merges none.
SEGMENT_PATTERN = r"^[a-z0-9][a-z0-9_]{0,39}$"
SegmentValue = Annotated[str, StringConstraints(pattern=SEGMENT_PATTERN)]


class _Section(BaseModel):
    """Every section rejects unknown keys: a typo must not silently become a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricSpec(_Section):
    name: str
    direction: Literal["maximize", "minimize"]

    @field_validator("name")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        if name not in CATALOGUE:
            raise ValueError(f"must be one of {sorted(CATALOGUE)}, got {name!r}")
        return name


class Bounds(_Section):
    """Limits a metric must stay within on the holdout for a candidate to be promoted."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("give at least one of 'min' or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class SlicesSpec(_Section):
    """Per-slice check: no slice's metric may stray further than max_gap from the overall.

    The gap is relative: |slice metric - overall metric| / |overall metric|.
    """

    by: list[ColumnName] = Field(min_length=1)
    max_gap: float = Field(gt=0)
    min_rows: int = Field(default=20, ge=1)

    @field_validator("by", mode="before")
    @classmethod
    def _one_column_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ReplaySpec(_Section):
    """Replay before promotion: on the last `days` days the model scored by day (inside the
    holdout), the candidate must do at least as well as what served on `min_share` of them."""

    days: int = Field(ge=1, le=366)
    min_share: float = Field(default=0.5, gt=0, le=1)


class PromotionSpec(_Section):
    policy: Literal["auto", "manual"] = "auto"
    min_improvement: float = Field(default=0.0, ge=0)
    thresholds: dict[str, Bounds] = Field(default_factory=dict)
    slices: SlicesSpec | None = None
    replay: ReplaySpec | None = None

    @field_validator("thresholds")
    @classmethod
    def _known_metrics(cls, thresholds: dict[str, Bounds]) -> dict[str, Bounds]:
        unknown = sorted(set(thresholds) - set(CATALOGUE))
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}; expected one of {sorted(CATALOGUE)}")
        return thresholds


class SplitSpec(_Section):
    test_size: float = Field(default=0.2, gt=0, lt=1)
    by: ColumnName | None = Field(
        default=None, description="time column: the latest rows become the holdout"
    )
    seed: int = 0


class ScheduleSpec(_Section):
    retrain: str | None = None
    predict: str | None = None

    @field_validator("retrain", "predict")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value

        fields = value.split()
        if (
            len(fields) != 5
            or not all(_CRON_FIELD.match(f) for f in fields)
            or not croniter.is_valid(value)
        ):
            raise ValueError(f"must be a 5-field cron expression like '0 3 * * 1', got {value!r}")
        return value


class PredictionsSpec(_Section):
    """Batch scores by day: `<model>/predictions` gets one partition per day from
    `daily_from`, each scoring the features rows of that day (by `split.by`, the time
    column), so a date range can be backfilled and each day keeps the scores its champion
    gave then."""

    daily_from: dt.date


class DriftSpec(_Section):
    method: Literal["psi", "ks", "jensenshannon", "chisquare"] = "psi"
    threshold: float = Field(default=0.2, gt=0)
    max_share: float = Field(default=0.3, gt=0, le=1)
    window: int = Field(default=5000, ge=10)


class LiveMetricSpec(_Section):
    """How far the live metric (predictions joined with late labels) may fall behind the
    champion's holdout metric before the model is retrained.

    `tolerance` is relative: with mae 2.0 on the holdout and tolerance 0.25, a live mae
    above 2.5 retrains. The metric is judged on the champion's latest `window` labelled
    rows, once at least `min_labels` of them have labels.
    """

    tolerance: float = Field(default=0.25, gt=0)
    min_labels: int = Field(default=200, ge=10)
    window: int = Field(default=5000, ge=10)

    @model_validator(mode="after")
    def _window_holds_min_labels(self) -> LiveMetricSpec:
        if self.window < self.min_labels:
            raise ValueError(
                f"window ({self.window}) must be at least min_labels ({self.min_labels})"
            )
        return self


class CanarySpec(_Section):
    """How a new champion reaches traffic: percentages of requests, step by step.

    The canary sensor moves to the next step once the new version has answered
    `min_requests` at the current one, and rolls back when its error rate exceeds
    `max_error_rate` or its p95 latency exceeds `max_latency_ratio` times the stable
    version's. With `shadow`, the new version first scores a copy of all traffic without
    answering, and must pass the same bar before it answers anyone.
    """

    steps: list[int] = Field(default_factory=lambda: [5, 25, 50, 100], min_length=1)
    min_requests: int = Field(default=200, ge=1)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_latency_ratio: float = Field(default=3.0, gt=1)
    shadow: bool = False
    check_every_seconds: int = Field(default=30, ge=1)

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[int]) -> list[int]:
        if any(not 0 < s <= 100 for s in steps):
            raise ValueError(f"each step is a traffic percentage in 1..100, got {steps}")
        if steps != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError(f"steps must strictly increase and end at 100, got {steps}")
        return steps


class ServingSpec(_Section):
    canary: CanarySpec = Field(default_factory=CanarySpec)


class SegmentsSpec(_Section):
    """One model per value of a column: its own data, gate, registered versions and champion.

    `values` lists the segments, or `discover` finds them in the data (the values of `by`
    in load_raw's rows, each a partition added as it first appears).
    """

    by: ColumnName
    values: list[SegmentValue] | Literal["discover"]

    @field_validator("values", mode="before")
    @classmethod
    def _segment_list(cls, values: Any) -> Any:
        """One clear message instead of one per member of the union."""
        if values == "discover":
            return values
        if not isinstance(values, list) or not values:
            raise ValueError(f"must be a list of segments or 'discover', got {values!r}")
        values = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values]
        bad = [v for v in values if not isinstance(v, str) or not re.match(SEGMENT_PATTERN, v)]
        if bad:
            raise ValueError(
                "each segment is 1-40 lower-case letters, digits or '_', starting with a "
                f"letter or digit, got {bad}"
            )
        if len(set(values)) != len(values):
            raise ValueError(f"each segment must be listed once, got {values}")
        return values

    @property
    def discovered(self) -> bool:
        return self.values == "discover"


class ResourcesSpec(_Section):
    cpus: float = Field(default=1, gt=0)
    memory: Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)?(Mi|Gi)$")] = "2Gi"
    timeout: Annotated[str, StringConstraints(pattern=r"^\d+(s|m|h)$")] = "30m"

    @property
    def memory_mib(self) -> int:
        """`memory` in MiB: the unit ECS takes and the endpoint's pod size adds up in."""
        amount, unit = float(self.memory[:-2]), self.memory[-2:]
        return round(amount * (1024 if unit == "Gi" else 1))

    @property
    def timeout_seconds(self) -> int:
        unit = {"s": 1, "m": 60, "h": 3600}[self.timeout[-1]]
        return int(self.timeout[:-1]) * unit


class ModelSpec(_Section):
    """One model project's model.yaml."""

    name: Annotated[str, StringConstraints(pattern=_IDENTIFIER, max_length=64)]
    owner: str
    description: str = Field(min_length=1)
    intended_use: str | None = Field(
        default=None, min_length=1, description="what the model is for (and not for): its card"
    )
    assumptions: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list, description="what must hold for its predictions to be right"
    )
    limitations: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list, description="where it is known to do badly or not apply"
    )
    task: Literal["regression", "classification"]
    target: ColumnName
    metric: MetricSpec
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    live_metric: LiveMetricSpec = Field(default_factory=LiveMetricSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    segments: SegmentsSpec | None = None
    predictions: PredictionsSpec | None = None
    params: dict[str, Any] = Field(
        default_factory=dict, description="hyper-parameters handed to train(X, y, params)"
    )

    @field_validator("owner")
    @classmethod
    def _owner(cls, owner: str) -> str:
        if not _OWNER.match(owner):
            raise ValueError(f"must be an email address or 'team:<name>', got {owner!r}")
        return owner

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        metric = CATALOGUE[self.metric.name]
        if metric.task != self.task:
            raise ValueError(
                f"metric.name {self.metric.name!r} is a {metric.task} metric, "
                f"but task is {self.task!r}"
            )
        if metric.direction != self.metric.direction:
            raise ValueError(
                f"metric.direction must be {metric.direction!r} for {self.metric.name!r}, "
                f"got {self.metric.direction!r}"
            )
        if self.promotion.replay is not None and self.predictions is None:
            raise ValueError(
                "promotion.replay needs predictions.daily_from: it replays the days the "
                "model scored by day"
            )
        if self.predictions is not None and self.split.by is None:
            raise ValueError(
                "predictions.daily_from needs split.by, the time column that says which day "
                "a row belongs to"
            )
        if self.segments is not None and self.segments.by == self.target:
            raise ValueError(f"segments.by must be an input column, not the target {self.target!r}")
        slices = self.promotion.slices
        if self.segments is not None and slices is not None and self.segments.by in slices.by:
            raise ValueError(
                f"promotion.slices.by names {self.segments.by!r}, which segments.by splits "
                "the model by: each segment holds one value of it, so a slice would be the "
                "whole segment"
            )
        for name in self.promotion.thresholds:
            if CATALOGUE[name].task != self.task:
                raise ValueError(
                    f"promotion.thresholds.{name} is a {CATALOGUE[name].task} metric, "
                    f"but task is {self.task!r}"
                )
        return self

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return self.metric.direction


def load_spec(path: Path) -> ModelSpec:
    """Read and validate a model.yaml; raise SpecError naming the file and field on any mistake."""
    path = Path(path)
    shown = _display_path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(
            f"{shown}: file not found; every model project needs a model.yaml"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{shown}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{shown}: expected a mapping of fields, got {type(data).__name__}")
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(shown, exc)) from None
    if spec.name != path.parent.name:
        raise SpecError(
            f"{shown}: name must match the project folder {path.parent.name!r}, got {spec.name!r}"
        )
    return spec


def _describe(shown: str, exc: ValidationError) -> str:
    """One line per problem: `file: field.path message, got value`."""
    lines = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            lines.append(f"{shown}: {field} is required")
        elif error["type"] == "extra_forbidden":
            lines.append(f"{shown}: {field} is not a known field (check its spelling)")
        elif error["type"].startswith("value_error") or "got " in message:
            where = f"{field} " if field else ""
            lines.append(f"{shown}: {where}{message}")
        else:
            lines.append(f"{shown}: {field}: {_lower_first(message)}, got {error['input']!r}")
    return "\n".join(lines)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _display_path(path: Path) -> str:
    """The path relative to the working directory where possible, as people type it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
