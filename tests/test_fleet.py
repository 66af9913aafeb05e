"""A fleet: every model project of a folder in one code location, each model isolated.

A folder of good projects (one in a team folder) and broken ones of every kind (model.yaml
not YAML, a spec error, a file that fails to import, a schema missing): the good ones load
and run against their own stores, each broken one is its model's error asset whose check
fails with the message `modelfactory check` prints, and one sensor announces each error
once and its fix once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dagster import AssetIn, AssetKey, DagsterInstance, asset, build_sensor_context, materialize

from modelfactory.orchestration.fleet import (
    ERRORS_SENSOR,
    find_projects,
    fleet_definitions,
    load_fleet,
)
from modelfactory.orchestration.model_stores import ModelFilesystemStorage
from modelfactory.project.loader import import_project, load_project
from modelfactory.stores.home import local_home, notifier
from modelfactory.stores.notify import read_alerts

EXAMPLES = Path(__file__).resolve().parents[1] / "model_projects"
BROKEN = ("bad_yaml", "import_error", "schema_error", "spec_error")


def copy(example: str, target: Path) -> Path:
    """`example` copied to `target`, its model.yaml's name made the folder's."""
    shutil.copytree(EXAMPLES / example, target, ignore=shutil.ignore_patterns("tests", "__py*"))
    spec = target / "model.yaml"
    spec.write_text(spec.read_text().replace(f"name: {example}", f"name: {target.name}", 1))
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """model_projects/ with penguins, team/diabetes and four broken projects."""
    folder = tmp_path / "model_projects"
    copy("penguins", folder / "penguins")
    copy("diabetes", folder / "team" / "diabetes")
    bad_yaml = copy("penguins", folder / "bad_yaml")
    (bad_yaml / "model.yaml").write_text((bad_yaml / "model.yaml").read_text() + "task: [oops\n")
    features = copy("penguins", folder / "import_error") / "features.py"
    features.write_text(features.read_text() + "\nimport a_module_nobody_installed\n")
    schemas = copy("breast_cancer", folder / "schema_error") / "schemas.py"
    edit(schemas, "\nFeatureSchema =", "\nFeatureSchemaRenamed =")
    spec = copy("diabetes", folder / "spec_error") / "model.yaml"
    edit(spec, "direction: minimize", "direction: up")
    return folder


def error_of(root: Path) -> str:
    """What loading the project says: the text `modelfactory check` prints too."""
    with pytest.raises(Exception) as failed:
        import_project(load_project(root))
    return str(failed.value)


def test_good_projects_load_and_each_broken_one_is_its_models_error(fleet: Path) -> None:
    defs = fleet_definitions(fleet)
    graph = defs.resolve_asset_graph()
    groups = {key.path[0] for key in graph.get_all_asset_keys()}
    assert groups == {"penguins", "diabetes", *BROKEN}
    for model in ("penguins", "diabetes"):
        assert AssetKey([model, "candidate"]) in graph.get_all_asset_keys()
        assert defs.resolve_job_def(f"{model}_train")

    where = {
        "bad_yaml": ("model.yaml", "line "),  # line and column of the YAML error
        "import_error": ("features.py", "line "),  # the line of the import
        "schema_error": ("schemas.py", "FeatureSchema"),
        "spec_error": ("model.yaml", "metric.direction"),
    }
    for model, (file, field) in where.items():
        node = defs.resolve_assets_def(AssetKey([model, "project"]))
        key = AssetKey([model, "project"])
        metadata = node.metadata_by_key[key]
        message = error_of(fleet / model)
        assert metadata["message"] == message
        assert metadata["file"].endswith(f"{model}/{file}")
        assert metadata["field"].startswith(field), metadata["field"]
        assert message in node.descriptions_by_key[key]
        assert node.group_names_by_key[key] == model
        [check] = node.check_specs
        assert check.blocking and check.name == "loads"

    assert "No module named 'a_module_nobody_installed'" in error_of(fleet / "import_error")
    assert "metric.direction" in error_of(fleet / "spec_error")


def test_modelfactory_check_prints_the_same_error(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contract plugin's `project_loads` item fails with the asset's message."""
    monkeypatch.chdir(fleet.parent)  # paths are shown relative to where one works
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(fleet / "import_error" / "model.yaml"), "-q",
         "-p", "modelfactory.testing", "-p", "no:cacheprovider"],
        cwd=fleet.parent, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert error_of(fleet / "import_error") in result.stdout


def test_every_asset_is_in_its_models_pool(fleet: Path) -> None:
    graph = fleet_definitions(fleet).resolve_asset_graph()
    for node in graph.assets_defs:
        [model] = {key.path[0] for key in node.keys}
        assert node.op.pool == f"modelfactory/{model}", node.keys


def test_the_broken_models_check_fails_with_its_message_when_run(fleet: Path) -> None:
    key = AssetKey(["spec_error", "project"])
    node = fleet_definitions(fleet).resolve_assets_def(key)
    result = materialize([node], raise_on_error=False)
    assert not result.success  # a failed blocking check fails the run: the alerts fire
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.description == error_of(fleet / "spec_error")


def test_good_models_write_to_their_own_stores(fleet: Path) -> None:
    """The location-wide warehouse and io_manager keep each model's data apart."""
    defs = fleet_definitions(fleet)
    steps = [AssetKey([m, s]) for m in ("penguins", "diabetes") for s in ("raw", "features")]
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        asset_selection=[*steps, AssetKey(["penguins", "split"])],
        instance=DagsterInstance.get(),
    )
    assert result.success
    home = local_home()
    for model in ("penguins", "diabetes"):
        with duckdb.connect(str(home.warehouse(model)), read_only=True) as db:
            tables = {row[0] for row in db.sql(
                "select table_schema || '.' || table_name from information_schema.tables"
            ).fetchall()}  # fmt: skip
        steps = {"raw", "features", "split"} if model == "penguins" else {"raw", "features"}
        assert tables == {f"{model}.{step}" for step in steps}  # its own file and tables


def test_small_objects_go_to_their_models_folder(tmp_path: Path) -> None:
    """io_manager (pickles between assets): one folder per model under one resource."""

    @asset(key=["first", "made"])
    def made() -> dict:
        return {"n": 1}

    @asset(key=["second", "used"], ins={"made": AssetIn(key=["first", "made"])})
    def used(made: dict) -> int:
        return made["n"] + 1

    storage = ModelFilesystemStorage(base_dir=str(tmp_path / "storage"))
    result = materialize([made, used], resources={"io_manager": storage})
    assert result.success and result.output_for_node("second__used") == 2
    assert (tmp_path / "storage" / "first" / "first" / "made").is_file()
    assert (tmp_path / "storage" / "second" / "second" / "used").is_file()


def test_each_error_is_announced_once_and_its_fix_once(fleet: Path) -> None:
    log = local_home().alerts_log

    def tick(cursor: str | None) -> str | None:
        sensor = fleet_definitions(fleet).resolve_sensor_def(ERRORS_SENSOR)
        context = build_sensor_context(cursor=cursor, resources={"notifier": notifier()})
        sensor.evaluate_tick(context)
        return context.cursor

    cursor = tick(None)
    said = read_alerts(log)
    assert sorted(a.model for a in said) == sorted(BROKEN)
    assert all(a.event == "project_broken" and a.severity == "error" for a in said)
    spec = next(a for a in said if a.model == "spec_error")
    assert error_of(fleet / "spec_error") in spec.text
    assert spec.links["asset"].endswith("/assets/spec_error/project")

    cursor = tick(cursor)
    assert len(read_alerts(log)) == len(BROKEN)  # nothing new, nothing said again

    edit(fleet / "spec_error" / "model.yaml", "direction: up", "direction: minimize")
    schemas = fleet / "schema_error" / "schemas.py"
    schemas.write_text(schemas.read_text() + "\nraise RuntimeError('another mistake')\n")
    cursor = tick(cursor)
    new = read_alerts(log)[len(BROKEN) :]
    assert [(a.model, a.event) for a in new] == [
        ("schema_error", "project_broken"),  # a different error of the same model: said again
        ("spec_error", "project_loads"),
    ]
    assert set(json.loads(cursor or "{}")) == set(BROKEN) - {"spec_error"}


def test_include_keeps_part_of_the_folder_and_names_stay_unique(fleet: Path) -> None:
    assert find_projects(fleet, include=["team/*"]) == [fleet / "team" / "diabetes"]
    assert [p.name for p in load_fleet(fleet, include=["penguins", "team/*"])[0]] == [
        "penguins",
        "diabetes",
    ]
    copy("penguins", fleet / "team" / "penguins")  # a second project named penguins
    projects, broken = load_fleet(fleet, include=["penguins", "team/*"])
    assert [p.name for p in projects] == ["penguins", "diabetes"]
    [twin] = broken
    assert twin.name == "penguins_2" and twin.root == fleet / "team" / "penguins"
    assert "name 'penguins' is another project's" in twin.message
