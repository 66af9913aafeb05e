"""bench/scale.py's generator, without `dagster dev`: a fleet it builds is a fleet of valid
model projects that the copy's workspace.yaml loads, so `make bench-scale` cannot silently
measure an empty or broken workspace."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import yaml

from modelfactory.project.loader import load_project

REPO = Path(__file__).resolve().parents[1]


def _scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "scale.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_the_generator_builds_a_fleet_of_valid_projects(tmp_path: Path) -> None:
    scale = _scale()
    copy = scale.make_copy(REPO, tmp_path / "repo")
    assert not (copy / ".git").exists() and not (copy / ".modelfactory").exists()
    removed = scale.remove_projects(copy)
    assert "demand_forecast" in removed  # the examples are not part of the fleet
    names = scale.model_names(2)
    scale.generate(copy, names, scale.copy_env(copy, tmp_path))

    found = sorted(p.parent for p in (copy / "model_projects").glob("**/model.yaml"))
    assert [p.name for p in found] == names
    tasks = [load_project(p).spec.task for p in found]
    assert tasks == ["regression", "classification"]
    _assert_workspace_loads(copy, found)


def _assert_workspace_loads(copy: Path, projects: list[Path]) -> None:
    """Every workspace entry naming a file names one that exists, and every project lies
    in the folder of one of them (a location per model, or one for model_projects/)."""
    entries = yaml.safe_load((copy / "workspace.yaml").read_text())["load_from"]
    targets = [next(iter(e.values())) for e in entries]
    files = [copy / t["relative_path"] for t in targets if "relative_path" in t]
    assert all(f.is_file() for f in files), [str(f) for f in files if not f.is_file()]
    for project in projects:
        assert any(project.is_relative_to(f.parent) for f in files), project


def test_a_size_that_would_not_fit_is_estimated_from_the_sizes_measured() -> None:
    scale = _scale()
    gib = scale.GIB
    assert scale.estimate_rss(10, []) == 10 * scale.RSS_PER_MODEL_GUESS
    one = [scale.Result(10, rss=4 * gib)]
    assert scale.estimate_rss(100, one) == 40 * gib
    two = [*one, scale.Result(20, rss=6 * gib)]  # 2 GiB fixed + 0.2 GiB a model
    assert scale.estimate_rss(100, two) == 22 * gib


def test_the_targets_are_judged_at_100_models_only() -> None:
    scale = _scale()
    small = scale.Result(10, loaded_s=5, rss=scale.GIB, daemon_cpu=1.0)
    assert "Not judged" in scale.verdicts([small])[0]
    big = scale.Result(100, loaded_s=80, rss=4 * scale.GIB, daemon_cpu=10.0)
    assert [v.endswith("**met**") for v in scale.verdicts([small, big])] == [True, False, True]
