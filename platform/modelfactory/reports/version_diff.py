"""`modelfactory diff`: why a model changed between two versions, in one screen.

Everything compared was recorded when each version was trained and evaluated: holdout
metrics overall and per slice (version tags), the training data (rows, time range, content
hash, schema; the snapshot for distribution shift), the code (code version and git sha,
with the project files that changed between the two commits), the params and the
environment (the audit trail, else the MLflow run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from modelfactory.ml import datasets, monitoring
from modelfactory.ml.evaluation import METRICS
from modelfactory.project.loader import ModelProject
from modelfactory.stores import snapshots
from modelfactory.stores.audit import recorded
from modelfactory.stores.registry import VersionInfo

__all__ = ["VersionDiff", "diff_versions"]


@dataclass(frozen=True)
class VersionDiff:
    unit: str
    a: str
    b: str
    sections: dict[str, list[str]]
    shifted: list[str] = field(default_factory=list)  # features whose distribution moved

    def render(self) -> str:
        lines = [f"{self.unit}: v{self.a} -> v{self.b}"]
        for title, body in self.sections.items():
            lines += ["", f"{title}:", *(f"  {line}" for line in body or ["no change"])]
        return "\n".join(lines)


def diff_versions(
    project: ModelProject, unit: str, a: str, b: str, *, registry: Any, audit: Any
) -> VersionDiff:
    """Compare `unit`'s versions `a` and `b` (in that order: from, to)."""
    old, new = (registry.existing_version(unit, v) for v in (a, b))
    shifted, shift_lines = _shift(project, registry, old, new)
    sections = {
        "metrics on each one's holdout": _metrics(project, old, new),
        "per slice": _slices(project, old, new),
        "data": _data(old, new),
        "distribution shift of the training inputs": shift_lines,
        "code": _code(project, old, new),
        "params": _changed(*(recorded(v, registry, audit, "params") for v in (old, new))),
        "environment": _changed(*(recorded(v, registry, audit, "environment") for v in (old, new))),
    }
    return VersionDiff(unit=unit, a=a, b=b, sections=sections, shifted=shifted)


def _metrics(project: ModelProject, old: VersionInfo, new: VersionInfo) -> list[str]:
    before, after = old.holdout_metrics, new.holdout_metrics
    gate = project.spec.metric.name
    lines = []
    for metric in METRICS.values():
        if metric.name not in before or metric.name not in after:
            continue
        x, y = before[metric.name], after[metric.name]
        better = (y < x) if metric.direction == "minimize" else (y > x)
        trend = "same" if x == y else ("better" if better else "worse")
        star = " (the gate's metric)" if metric.name == gate else ""
        lines.append(f"{metric.name}: {x:.4g} -> {y:.4g} ({_relative(x, y)}, {trend}){star}")
    return lines


def _slices(project: ModelProject, old: VersionInfo, new: VersionInfo) -> list[str]:
    if project.spec.promotion.slices is None:
        return ["no slices configured"]
    metric = project.spec.metric.name
    before, after = (
        {s["slice"]: s for s in json.loads(v.tags.get("mf.slices", "[]"))} for v in (old, new)
    )
    lines = []
    for name in sorted(set(before) | set(after)):
        x, y = before.get(name, {}).get(metric), after.get(name, {}).get(metric)
        if x is None or y is None:
            lines.append(f"{name}: {metric} {_num(x)} -> {_num(y)}")
            continue
        gaps = f"gap {_pct(before[name].get('gap'))} -> {_pct(after[name].get('gap'))}"
        lines.append(f"{name}: {metric} {x:.4g} -> {y:.4g} ({_relative(x, y)}), {gaps}")
    return lines or ["not recorded for these versions"]


def _data(old: VersionInfo, new: VersionInfo) -> list[str]:
    lines = []
    for label, tag in (
        ("training rows", "mf.train_rows"),
        ("holdout rows", "mf.holdout_rows"),
        ("time range", "mf.time_range"),
        ("content hash", "mf.data_hash"),
    ):
        x, y = old.tags.get(tag, "?"), new.tags.get(tag, "?")
        if x != y:
            lines.append(f"{label}: {x} -> {y}")
    before, after = (json.loads(v.tags.get("mf.schema", "{}")) for v in (old, new))
    for column in sorted(set(after) - set(before)):
        lines.append(f"column added: {column} ({after[column]})")
    for column in sorted(set(before) - set(after)):
        lines.append(f"column removed: {column}")
    for column in sorted(c for c in set(before) & set(after) if before[c] != after[c]):
        lines.append(f"column type: {column} {before[column]} -> {after[column]}")
    return lines


def _shift(
    project: ModelProject, registry: Any, old: VersionInfo, new: VersionInfo
) -> tuple[list[str], list[str]]:
    """Score the new version's training inputs against the old one's reference profile, with
    the model's drift method and threshold."""

    if old.tags.get("mf.data_hash") == new.tags.get("mf.data_hash"):
        return [], ["same data"]
    reference = registry.reference_profile(old.model, old.version)
    if reference is None:
        return [], [f"v{old.version} kept no reference profile"]
    if "mf.snapshot" not in new.tags:
        return [], [f"v{new.version} kept no training data snapshot"]
    try:
        split = snapshots.load(new.tags["mf.snapshot"], new.tags["mf.data_hash"], f"v{new.version}")
    except snapshots.SnapshotError as exc:  # the other sections do not need it
        return [], [str(exc)]
    inputs, _ = datasets.xy(split, project.spec, "train")
    drift = project.spec.drift
    result = monitoring.compare(reference, inputs, drift)
    shifted = [c.column for c in result.columns if c.drifted]
    lines = [
        f"{c.column}: {drift.method} {c.score:.3g}{'  SHIFTED' if c.drifted else ''}"
        for c in sorted(result.columns, key=lambda c: -c.score)
    ]
    lines.append(f"shifted (over {drift.threshold}): {', '.join(shifted) or 'none'}")
    return shifted, lines


def _code(project: ModelProject, old: VersionInfo, new: VersionInfo) -> list[str]:
    lines = []
    code = [v.tags.get("mf.code_version", "?") for v in (old, new)]
    if code[0] != code[1]:
        lines.append(f"code version: {code[0]} -> {code[1]}")
    shas = [v.tags.get("mf.git_sha", "unknown") for v in (old, new)]
    if shas[0] != shas[1]:
        lines.append(f"git: {shas[0][:12]} -> {shas[1][:12]}")
        files = _files_changed(project, *shas)
        lines.append(
            f"project files changed: {', '.join(files)}"
            if files is not None
            else "project files changed: unknown (a commit is not in this checkout)"
        )
    elif code[0] != code[1] and shas[0] != "unknown":
        lines.append("same commit: the project had uncommitted changes")
    return lines


def _files_changed(project: ModelProject, a: str, b: str) -> list[str] | None:
    """The project's files that differ between two commits; None if one is not here."""
    if not (_has_commit(project, a) and _has_commit(project, b)):
        return None
    changed = project.git("diff", "--name-only", a, b, "--", ".")
    return changed.splitlines() if changed else ["none"]


def _has_commit(project: ModelProject, sha: str) -> bool:
    return project.git("rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}") is not None


def _changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    if before is None or after is None:
        return ["not recorded for both versions"]
    return [
        f"{key}: {before.get(key, '-')} -> {after.get(key, '-')}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


def _relative(x: float, y: float) -> str:
    if not x:
        return f"{y - x:+.4g}"
    change = (y - x) / abs(x)
    return f"{change:+.1%}" if abs(change) < 10 else f"x{y / x:.3g}"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"
