"""The production deployment files (deploy/), checked without Docker, Kubernetes or AWS.

Each file is held against what reads it: Dagster's own instance and workspace schemas and the
classes an instance yaml names, the Helm chart's and compose's layout, the model projects of
workspace.yaml (each needs a code server everywhere), the variables deploy/.env.example
documents, and the run tags every job of a model carries, from which the launchers size each
run. Nothing here connects anywhere.
"""

from __future__ import annotations

import importlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterRun, DefaultRunLauncher, JobDefinition, QueuedRunCoordinator
from dagster._core.instance.config import ConcurrencyConfig, PoolGranularity
from dagster._core.instance.ref import InstanceRef
from dagster._core.workspace.config_schema import ensure_workspace_config
from dagster._utils.tags import TagConcurrencyLimitsCounter
from dagster_aws.ecs import EcsRunLauncher
from dagster_aws.ecs.container_context import EcsContainerContext
from dagster_k8s import DagsterK8sJobConfig, construct_dagster_k8s_job
from dagster_k8s.job import get_user_defined_k8s_config
from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter
from sqlalchemy.engine import make_url

from modelfactory.orchestration.definitions import build_definitions
from modelfactory.orchestration.run_tags import FARGATE_SIZES, MODEL_TAG, fargate_size, run_tags
from modelfactory.project.loader import ModelProject, load_project

# Private Dagster paths above, tests only: Dagster has no public call that validates an instance
# yaml or a workspace without connecting to their storage and servers, nor one that evaluates
# tag concurrency limits or reads the pool settings outside the daemon.

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
INSTANCES = {"compose": DEPLOY / "dagster.prod.yaml", "ecs": DEPLOY / "ecs" / "dagster.ecs.yaml"}
LAUNCHERS = {"compose": DefaultRunLauncher, "ecs": EcsRunLauncher}
PROJECTS = sorted(path.parent.name for path in REPO.glob("model_projects/*/model.yaml"))
SERVICES = {"postgres", "mlflow", "dagster-webserver", "dagster-daemon", "endpoint"}
# What the production profile reads from its environment; deploy/.env.example documents each.
VARIABLES = {
    "MODELFACTORY_PROFILE", "MODELFACTORY_BRANCH",
    "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_DATABASE",
    "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_ROLE",
    "MODELFACTORY_S3_BUCKET", "MODELFACTORY_S3_PREFIX", "AWS_REGION", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
    "MLFLOW_TRACKING_URI", "MODELFACTORY_SERVING_DB",
    "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB",
    "SLACK_BOT_TOKEN", "MODELFACTORY_SLACK_CHANNEL",
    "MODELFACTORY_DAGSTER_URL", "MODELFACTORY_MLFLOW_UI", "MODELFACTORY_ENDPOINT_URL",
}  # fmt: skip
VARIABLE_LINE = re.compile(r"(?:# )?([A-Z][A-Z0-9_]*)=(.*)")  # `# NAME=` documents an optional one


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def workspace_files() -> dict[str, str]:
    """The code locations of the repository's workspace.yaml -> the definitions.py each loads
    (one, model_projects, holding every model project, unless a team split it)."""
    entries = load(REPO / "workspace.yaml")["load_from"]
    return {e["python_file"]["location_name"]: e["python_file"]["relative_path"] for e in entries}


def locations() -> list[str]:
    return list(workspace_files())


def definitions_file(location: str) -> str:
    return workspace_files()[location]


def documented_variables() -> dict[str, str]:
    """Every variable deploy/.env.example documents, with its example value."""
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    return {m[1]: m[2] for line in lines if (m := VARIABLE_LINE.fullmatch(line))}


def env_references(node: Any) -> set[str]:
    """The variables a Dagster yaml reads through `{env: NAME}`."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*map(env_references, node.values()))
    if isinstance(node, list):
        return set().union(*map(env_references, node))
    return set()


def is_dns_label(name: str) -> bool:
    """A Kubernetes Service name, and a host name every gRPC client resolves."""
    return re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name) is not None


def instance_ref(path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> InstanceRef:
    """An instance yaml validated against Dagster's instance schema, with the variables it reads
    set to deploy/.env.example's values (a name missing there stays unset and fails)."""
    variables = documented_variables()
    for name in env_references(load(path)) | {"AWS_DEFAULT_REGION"}:
        if name in variables:
            monkeypatch.setenv(name, variables[name])
    return InstanceRef.from_dir(str(home), config_dir=str(path.parent), config_filename=path.name)


def compose() -> dict[str, Any]:
    return load(DEPLOY / "docker-compose.yaml")


def code_servers(services: dict[str, Any]) -> dict[str, str]:
    """definitions file -> the compose service whose code server loads it."""
    found = {}
    for name, service in services.items():
        command = service.get("command") or []
        if command[:3] == ["dagster", "code-server", "start"] and "-f" in command:
            found[command[command.index("-f") + 1]] = name
    return found


# ---- Dagster instance: dagster.prod.yaml (compose) and ecs/dagster.ecs.yaml ------------------


@pytest.mark.parametrize("target", sorted(INSTANCES))
def test_instance_yaml_is_valid_and_its_classes_load(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = INSTANCES[target]
    undocumented = env_references(load(path)) - set(documented_variables())
    assert not undocumented, f"{path.name} reads variables .env.example lacks: {undocumented}"

    ref = instance_ref(path, tmp_path, monkeypatch)

    storage = ref.storage_data
    assert storage.module_name == "dagster_postgres"
    assert storage.class_name == "DagsterPostgresStorage"
    assert hasattr(importlib.import_module(storage.module_name), storage.class_name)
    # the cheap ones are built from their config, as the daemon does: a typo in a module, a
    # class or a config key fails here
    assert isinstance(ref.run_coordinator_data.rehydrate(), QueuedRunCoordinator)
    launcher = ref.run_launcher_data.rehydrate()
    assert type(launcher) is LAUNCHERS[target]
    ref.compute_logs_data.rehydrate()
    # Dagster refuses to start when it should resume runs its launcher cannot resume
    if load(path)["run_monitoring"].get("max_resume_run_attempts", 0) > 0:
        assert launcher.supports_resume_run


def concurrency(ref: InstanceRef) -> ConcurrencyConfig:
    """The run queue's limits and the pools' settings, read as the daemon reads them."""
    coordinator = ref.run_coordinator_data.rehydrate(QueuedRunCoordinator)
    settings = dict(ref.settings.get("concurrency") or {})
    return ConcurrencyConfig.from_concurrency_settings(settings, coordinator.get_run_queue_config())


@pytest.mark.parametrize("target", sorted(INSTANCES))
def test_the_run_queue_runs_one_job_per_model_at_a_time(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = concurrency(instance_ref(INSTANCES[target], tmp_path, monkeypatch))
    assert config.run_queue_config is not None
    limits = config.run_queue_config.tag_concurrency_limits
    spec = load_project(REPO / "model_projects" / PROJECTS[0]).spec
    running = [DagsterRun(job_name=f"{spec.name}_train", tags=run_tags(spec))]
    queue = TagConcurrencyLimitsCounter(list(limits), running)

    assert queue.is_blocked(DagsterRun(job_name=f"{spec.name}_predict", tags=run_tags(spec)))
    other = {**run_tags(spec), MODEL_TAG: "another_model"}
    assert not queue.is_blocked(DagsterRun(job_name="another_model_train", tags=other))
    local = load(REPO / "dagster.yaml")["concurrency"]
    assert list(limits) == local["runs"]["tag_concurrency_limits"]  # the same rule as `make dev`


@pytest.mark.parametrize("target", sorted(INSTANCES))
def test_every_model_pool_holds_one_run_at_a_time(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs the UI launches from an asset selection carry no job tags: the pool of their
    assets (modelfactory/<model>, limit 1 by default, at run granularity) queues them."""
    pools = concurrency(instance_ref(INSTANCES[target], tmp_path, monkeypatch)).pool_config
    assert pools.pool_granularity == PoolGranularity.RUN
    assert pools.default_pool_limit == 1
    assert load(REPO / "dagster.yaml")["concurrency"]["pools"] == {
        "granularity": "run",
        "default_limit": 1,
    }  # the same rule as `make dev`


def test_only_crashed_runs_are_retried_and_stuck_ones_stopped() -> None:
    for path in INSTANCES.values():
        config = load(path)
        assert config["run_retries"] == {
            "enabled": True,
            "max_retries": 1,
            "retry_on_asset_or_op_failure": False,
        }
        # run monitoring enforces each model's dagster/max_runtime tag
        assert config["run_monitoring"]["enabled"] is True
        assert config["telemetry"] == {"enabled": False}


def test_ecs_instance_differs_from_compose_only_in_where_runs_run() -> None:
    compose_, ecs = (load(INSTANCES[target]) for target in ("compose", "ecs"))
    for key in ("storage", "run_coordinator", "concurrency", "run_retries", "telemetry"):
        assert ecs[key] == compose_[key], key
    resume = "max_resume_run_attempts"
    assert {**ecs["run_monitoring"], resume: 0} == {**compose_["run_monitoring"], resume: 0}
    assert (ecs["run_launcher"]["module"], ecs["run_launcher"]["class"]) == (
        "dagster_aws.ecs",
        "EcsRunLauncher",
    )


# ---- docker compose, its variables and its workspace -----------------------------------------


def test_compose_runs_the_stack_and_a_code_server_per_location() -> None:
    services = compose()["services"]
    assert set(services) >= SERVICES
    servers = code_servers(services)
    for location in locations():
        service = servers.get(definitions_file(location))
        assert service, (
            f"deploy/docker-compose.yaml has no code server for {location}: add a service running"
            f" `dagster code-server start -h 0.0.0.0 -p 4000 -f {definitions_file(location)}`"
        )
        command = services[service]["command"]
        assert command[command.index("-p") + 1] == "4000"
        assert is_dns_label(service), f"{service}: use letters, digits and '-' in service names"
    assert len(servers) == len(locations()), "a code server for a location workspace.yaml lacks"
    endpoint = " ".join(services["endpoint"]["command"])
    assert endpoint == "modelfactory serve --host 0.0.0.0 --port 8000"
    for name in set(services) - {"postgres"}:
        assert services[name]["env_file"] == ".env", name


def test_compose_reads_only_documented_variables() -> None:
    text = (DEPLOY / "docker-compose.yaml").read_text()
    referenced = set(re.findall(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    assert referenced, "no ${VAR} found: the pattern is wrong"
    assert referenced <= set(documented_variables()), referenced - set(documented_variables())


def test_env_example_documents_every_variable_in_a_comment_above_it() -> None:
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    assert set(documented_variables()) >= VARIABLES, VARIABLES - set(documented_variables())
    for above, line in itertools.pairwise(lines):
        if match := VARIABLE_LINE.fullmatch(line):
            assert above.startswith("# ") and not VARIABLE_LINE.fullmatch(above), match[1]


def test_postgres_init_creates_every_database_the_stack_uses() -> None:
    sql = (DEPLOY / "postgres-init.sql").read_text()
    created = set(re.findall(r"^CREATE DATABASE (\w+);", sql, re.MULTILINE))
    variables = documented_variables()
    serving = make_url(variables["MODELFACTORY_SERVING_DB"])
    mlflow = compose()["services"]["mlflow"]["command"]
    backend = next(arg.split("=", 1)[1] for arg in mlflow if arg.startswith("--backend-store-uri="))

    assert {variables["DAGSTER_PG_DB"], serving.database, backend.rsplit("/", 1)[1]} <= created
    assert serving.host == variables["DAGSTER_PG_HOST"]
    assert serving.username == variables["DAGSTER_PG_USER"]
    mounts = compose()["services"]["postgres"]["volumes"]
    assert any(m.startswith("./postgres-init.sql:/docker-entrypoint-initdb.d/") for m in mounts)


def test_prod_workspace_points_at_the_code_servers() -> None:
    path = DEPLOY / "workspace.prod.yaml"
    workspace = ensure_workspace_config(load(path), str(path))
    servers = [entry["grpc_server"] for entry in workspace["load_from"]]
    services = compose()["services"]
    by_file = code_servers(services)

    assert sorted(s["location_name"] for s in servers) == sorted(locations())
    for server in servers:
        service = by_file[definitions_file(server["location_name"])]
        assert server["host"] == service
        command = services[service]["command"]
        assert str(server["port"]) == command[command.index("-p") + 1]
    for name in ("dagster-webserver", "dagster-daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == "deploy/workspace.prod.yaml"


# ---- Helm ---------------------------------------------------------------------------------


def helm_values() -> dict[str, Any]:
    return load(DEPLOY / "helm" / "values.yaml")


def snake(settings: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value for key, value in settings.items()}


def helm_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The dagster.yaml the chart renders from `values` (its storage, queue, monitoring,
    retries), as its configmap-instance template does."""
    postgres, daemon = values["postgresql"], values["dagsterDaemon"]
    limits = values["concurrency"]
    assert limits["enabled"]
    return {
        "storage": {
            "postgres": {
                "postgres_db": {
                    "username": postgres["postgresqlUsername"],
                    "password": {"env": "DAGSTER_PG_PASSWORD"},
                    "hostname": postgres["postgresqlHost"],
                    "db_name": postgres["postgresqlDatabase"],
                    "port": postgres["service"]["port"],
                }
            }
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": daemon["runCoordinator"]["type"],
        },
        "concurrency": {"runs": snake(limits["runs"]), "pools": snake(limits["pools"])},
        "run_monitoring": snake(daemon["runMonitoring"]),
        "run_retries": snake(daemon["runRetries"]),
        "telemetry": values["telemetry"],
    }


def test_helm_values_run_each_model_on_kubernetes() -> None:
    values = helm_values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    postgres = values["postgresql"]
    assert postgres["enabled"] is False and postgres["postgresqlHost"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]

    user_code = values["dagster-user-deployments"]
    assert user_code["enabled"] and user_code["enableSubchart"]
    deployments = {d["name"]: d for d in user_code["deployments"]}
    workspace = values["dagsterWebserver"]["workspace"]
    assert workspace["enabled"]
    servers = {server["name"]: server for server in workspace["servers"]}
    assert sorted(servers) == sorted(locations())
    for location, server in servers.items():
        deployment = deployments.get(server["host"])
        assert deployment, f"helm/values.yaml: no user deployment {server['host']} for {location}"
        assert deployment["dagsterApiGrpcArgs"] == ["-f", definitions_file(location)]
        assert deployment["port"] == server["port"]
        assert is_dns_label(deployment["name"])
        assert set(deployment["env"]) <= set(documented_variables())
        assert deployment["envSecrets"] and deployment["image"]["repository"]
    assert len(deployments) == len(servers)


def test_helm_daemon_settings_are_valid_and_match_the_other_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = helm_instance(helm_values())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "x")
    ref = InstanceRef.from_dir(str(tmp_path))
    assert isinstance(ref.run_coordinator_data.rehydrate(), QueuedRunCoordinator)

    ecs = load(INSTANCES["ecs"])
    for key in ("run_coordinator", "concurrency", "run_monitoring", "run_retries", "telemetry"):
        assert rendered[key] == ecs[key], key  # K8s and ECS runs both can resume


# ---- the image ----------------------------------------------------------------------------


def dockerignore() -> list[str]:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out, by Docker's rules: `**` spans folders, a
    folder takes its contents, the last matching pattern (`!` re-includes) wins."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        glob = re.escape(pattern.lstrip("!").strip("/"))
        glob = glob.replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        glob = glob.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(glob, prefix) for prefix in prefixes):
            result = not pattern.startswith("!")
    return result


def test_dockerfile_builds_a_multi_stage_non_root_image_from_the_repository() -> None:
    parser = DockerfileParser(str(DEPLOY / "Dockerfile"))
    stages: list[str] = []
    user, copied = None, []
    for instruction, context in zip(parser.structure, parser.context_structure, strict=True):
        kind, value = instruction["instruction"], instruction["value"]
        words = list(WordSplitter(value, args=context.args, envs=context.envs).split())
        if kind == "FROM":  # FROM <image> [AS <name>]
            name = value.split()[1:]
            stages.append(name[1] if len(name) == 2 and name[0].lower() == "as" else "")
            user = None
        elif kind == "USER":
            user = words[0]
        elif kind == "COPY":
            source = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            if source is not None:
                assert source in stages, f"COPY --from={source}: no such earlier stage"
                continue
            copied += [w for w in words if not w.startswith("--")][:-1]

    assert len(stages) >= 2
    assert parser.parent_images[-1] == "python:3.11-slim"
    assert user is not None and user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0
    assert any(
        ".[prod,examples]" in i["value"] for i in parser.structure if i["instruction"] == "RUN"
    )
    patterns = dockerignore()
    for path in copied:
        assert (REPO / path).exists(), f"deploy/Dockerfile copies {path}: not in the repository"
        assert not ignored(path, patterns), f"deploy/Dockerfile.dockerignore leaves out {path}"
    assert {"workspace.yaml", "model_projects/", "deploy/workspace.prod.yaml"} <= set(copied)


def test_the_image_installs_from_a_lock_that_satisfies_pyproject() -> None:
    """deploy/requirements.lock pins every library the image installs; `make lock` rewrites it.
    A dependency added or raised in pyproject.toml without relocking fails here."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pinned: dict[str, str] = {}
    for line in (DEPLOY / "requirements.lock").read_text().splitlines():
        requirement = line.split("#")[0].split(";")[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==")
            pinned[canonicalize_name(name)] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"] + project["optional-dependencies"]["prod"]:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is in pyproject.toml but not in the lock: run `make lock`"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"the lock pins {name}=={pinned[name]}, outside pyproject's {requirement.specifier}: "
            "run `make lock`"
        )
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "--constraint deploy/requirements.lock" in dockerfile


def test_the_image_runs_under_tini() -> None:
    parser = DockerfileParser(str(DEPLOY / "Dockerfile"))
    entrypoints = [i["value"] for i in parser.structure if i["instruction"] == "ENTRYPOINT"]
    assert json.loads(entrypoints[-1])[:2] == ["tini", "--"]  # SIGTERM reaches the process
    installs = " ".join(i["value"] for i in parser.structure if i["instruction"] == "RUN")
    assert "install -y --no-install-recommends tini" in installs


def test_build_context_keeps_local_state_and_secrets_out() -> None:
    patterns = dockerignore()
    for path in (".venv", ".modelfactory", ".git", "mlruns", "deploy/.env", "x/warehouse.duckdb"):
        assert ignored(path, patterns), path
    assert not ignored("deploy/.env.example", patterns)


# ---- run tags: what sizes, limits and stops each run ----------------------------------------


@dataclass(frozen=True)
class Built:
    project: ModelProject
    jobs: list[JobDefinition]
    schedule_tags: list[dict[str, str]]


@pytest.fixture(scope="module", params=PROJECTS)
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One example project's code location, built once for this module."""
    home = tmp_path_factory.mktemp("home")
    (home / "dagster").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELFACTORY_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        project = load_project(REPO / "model_projects" / request.param)
        defs = build_definitions(project)
        jobs = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
        schedules = defs.get_repository_def().schedule_defs
        return Built(project, jobs, [dict(schedule.tags or {}) for schedule in schedules])


def test_every_job_of_a_model_carries_its_run_tags(built: Built) -> None:
    spec = built.project.spec
    expected = run_tags(spec)
    assert built.jobs
    for job in built.jobs:
        tags = dict(job.run_tags)
        assert {key: tags.get(key) for key in expected} == expected, job.name
    for tags in built.schedule_tags:  # a schedule's tags override its job's
        assert all(tags[key] == expected[key] for key in set(tags) & set(expected)), tags
    assert expected[MODEL_TAG] == spec.name
    assert int(expected["dagster/max_runtime"]) == spec.resources.timeout_seconds


def cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def mebibytes(quantity: str) -> float:
    amount, unit = re.fullmatch(r"([\d.]+)(Mi|Gi)", quantity).groups()  # the spec's units
    return float(amount) * {"Mi": 1, "Gi": 1024}[unit]


def test_a_run_pod_on_kubernetes_gets_the_model_resources(built: Built) -> None:
    resources = built.project.spec.resources
    for job in built.jobs:
        k8s_config = get_user_defined_k8s_config(dict(job.run_tags))  # what K8sRunLauncher reads
        image = DagsterK8sJobConfig(job_image="modelfactory:test", dagster_home="/opt/dagster")
        args = ["dagster", "api", "execute_run"]
        k8s_job = construct_dagster_k8s_job(image, args, "dagster-run-test", k8s_config)
        container = k8s_job.spec.template.spec.containers[0].resources
        for quantities in (container.requests, container.limits):
            assert cores(quantities["cpu"]) == resources.cpus, job.name
            assert mebibytes(quantities["memory"]) == mebibytes(resources.memory), job.name


def test_a_run_task_on_ecs_gets_the_model_resources(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = built.project.spec.resources
    launcher = instance_ref(INSTANCES["ecs"], tmp_path, monkeypatch).run_launcher_data.rehydrate(
        EcsRunLauncher
    )
    for job in built.jobs:
        run = DagsterRun(job_name=job.name, tags=dict(job.run_tags))
        context = EcsContainerContext.create_for_run(run, launcher)
        size = launcher.get_cpu_and_memory_overrides(context, run)
        # the tags win over the launcher's default run_resources, with a size Fargate offers
        cpu, memory = int(size["cpu"]), int(size["memory"])
        assert memory in FARGATE_SIZES[cpu], job.name
        assert cpu >= resources.cpus * 1024 and memory >= mebibytes(resources.memory), job.name


@pytest.mark.parametrize(
    ("cpus", "memory", "size"),
    [
        (1, 1024, (1024, 2048)),  # breast_cancer's spec: 1 vCPU needs at least 2 GiB
        (1, 2048, (1024, 2048)),  # already a Fargate size
        (0.25, 300, (256, 512)),
        (0.5, 5000, (1024, 5120)),  # more memory than half a vCPU may have
        (3, 9000, (4096, 9216)),
        (10, 50 * 1024, (16384, 56 * 1024)),
        (32, 256 * 1024, (32768, 256 * 1024)),  # beyond Fargate: as asked, for EC2 capacity
    ],
)
def test_ecs_sizes_round_up_to_what_fargate_offers(cpus, memory, size) -> None:
    assert fargate_size(cpus, memory) == size


# ---- CI --------------------------------------------------------------------------------------


def test_github_workflow_lints_tests_and_builds_the_image() -> None:
    workflow = load(DEPLOY / "github-actions.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]

    def job_running(command: str) -> str:
        found = [
            n for n, job in jobs.items() if any(command in s.get("run", "") for s in job["steps"])
        ]
        assert found, f"no job runs `{command}`"
        return found[0]

    checks = {job_running(c) for c in ("ruff check", "ruff format --check", "pytest -m contract")}
    assert jobs[job_running("pytest -m contract")]["env"]["MODELFACTORY_BRANCH"] == (
        "${{ github.head_ref || github.ref_name }}"
    )
    builds = [
        (name, step["with"])
        for name, job in jobs.items()
        for step in job["steps"]
        if step.get("uses", "").startswith("docker/build-push-action@")
    ]
    assert len(builds) == 1
    name, build = builds[0]
    assert (build["context"], build["file"]) == (".", "deploy/Dockerfile")
    assert "refs/heads/main" in build["push"] and "github.event_name == 'push'" in build["push"]
    assert checks <= set(jobs[name]["needs"])
