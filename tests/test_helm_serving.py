"""The endpoint's Helm chart (deploy/helm/modelfactory-serving), rendered and validated offline.

Helm's own engine renders and lints the chart (helm-python-sdk binds Helm's Go SDK; no helm
binary, no cluster), and every rendered object is held against the Kubernetes API's JSON
schemas (kubernetes-validate bundles them, strict: unknown fields fail too) at the oldest
Kubernetes the chart allows and the newest the validator knows. What the objects must agree
on is checked against the real parts: the probe paths answer as the chart expects on a real
endpoint app, the port is `modelfactory serve`'s, the pod size is what the model specs give.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import httpx
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from modelfactory.cli import main as cli
from modelfactory.project.loader import discover_projects
from modelfactory.project.spec import ResourcesSpec
from modelfactory.serving import create_app
from modelfactory.serving.k8s_values import BASE_MEMORY_MIB, endpoint_resources, endpoint_values
from modelfactory.serving.server import BackgroundServer
from modelfactory.stores.home import local_home, model_registry, rollout_store

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "helm" / "modelfactory-serving"
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
# The chart's kubeVersion floor and the newest schemas the validator ships.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.utils.latest_version())
# Objects of CRDs: no schema in the validator; each is checked against what it points at.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    # HPA on CPU and requests per second from 3 replicas up, ServiceMonitor for the adapter
    "rps-autoscaling": {
        "endpoint": {
            "autoscaling": {"minReplicas": 3, "requestsPerSecond": {"enabled": True}},
            "pdb": {"minAvailable": 2},
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        }
    },
    # a fixed size, some models only, MLflow run elsewhere
    "fixed-replicas": {
        "endpoint": {
            "autoscaling": {"enabled": False},
            "replicas": 3,
            "models": ["penguins", "diabetes"],
            "extraArgs": ["--refresh", "2"],
        },
        "mlflow": {"enabled": False},
    },
}


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chart's objects as `helm template` would print them."""
    with helm_python.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name="serving", namespace="modelfactory")
    return [
        obj
        for path, text in sorted(manifests.items())
        if path.endswith((".yaml", ".yml"))
        for obj in yaml.safe_load_all(text)
        if obj
    ]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def merged(overrides: dict[str, Any]) -> dict[str, Any]:
    with helm_python.Chart.load(CHART) as chart:
        return chart.merge_values(overrides)


def validate(obj: dict[str, Any]) -> None:
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> Iterator[tuple[dict, list[dict]]]:
    overrides = VARIANTS[request.param]
    yield merged(overrides), render(overrides)


def test_the_chart_lints_clean() -> None:
    for overrides in VARIANTS.values():
        report = helm_python.lint(CHART, overrides, strict=True, kube_version="v1.25.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]  # warning or error
        assert not problems and not report["errors"], report


def test_every_object_validates_against_the_kubernetes_schemas(variant) -> None:
    values, objects = variant
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= kinds
    assert ("HorizontalPodAutoscaler" in kinds) == values["endpoint"]["autoscaling"]["enabled"]
    assert ("ServiceMonitor" in kinds) == values["endpoint"]["serviceMonitor"]["enabled"]
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue  # test_the_service_monitor_scrapes_the_endpoint
        validate(obj)


def test_selectors_match_the_pods_and_the_pdb_leaves_room(variant) -> None:
    values, objects = variant
    endpoint = values["endpoint"]
    for deployment in by_kind(objects, "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        service = one(objects, "Service", deployment["metadata"]["name"])
        assert service["spec"]["selector"] == selector
        port_names = {p["name"] for c in pod_containers(deployment) for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
        # no other Deployment's pods behind this Service
        others = [d for d in by_kind(objects, "Deployment") if d is not deployment]
        for other in others:
            assert not selector.items() <= other["spec"]["template"]["metadata"]["labels"].items()

    deployment = one(objects, "Deployment", endpoint["name"])
    pdb = one(objects, "PodDisruptionBudget", endpoint["name"])
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    if endpoint["autoscaling"]["enabled"]:
        hpa = one(objects, "HorizontalPodAutoscaler", endpoint["name"])
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", endpoint["name"])
        fewest = hpa["spec"]["minReplicas"]
        assert "replicas" not in deployment["spec"]  # the HPA owns the count
    else:
        fewest = deployment["spec"]["replicas"]
        assert fewest == endpoint["replicas"]
    assert pdb["spec"]["minAvailable"] < fewest


def pod_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]


def endpoint_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = pod_containers(one(objects, "Deployment", DEFAULTS["endpoint"]["name"]))
    return container


def test_the_hpa_scales_on_cpu_and_on_requests_per_second_when_asked() -> None:
    default = one(render(), "HorizontalPodAutoscaler", "endpoint")
    assert [m["type"] for m in default["spec"]["metrics"]] == ["Resource"]
    assert default["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    rps = one(render(VARIANTS["rps-autoscaling"]), "HorizontalPodAutoscaler", "endpoint")
    (pods,) = [m["pods"] for m in rps["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods["metric"]["name"] == "http_requests_per_second"
    assert pods["target"] == {"type": "AverageValue", "averageValue": "50"}


def test_the_container_runs_serve_on_its_default_port_as_a_non_root_user(variant) -> None:
    values, objects = variant
    container = endpoint_container(objects)
    serve = cli.commands["serve"]
    (port_option,) = [p for p in serve.params if p.name == "port"]
    assert values["endpoint"]["port"] == port_option.default  # the chart's port is serve's
    args = container["args"]
    assert args[:2] == ["modelfactory", "serve"]
    assert args[args.index("--port") + 1] == str(values["endpoint"]["port"])
    assert args[args.index("--host") + 1] == "0.0.0.0"
    models = values["endpoint"]["models"]
    assert not models or args[-len(models) :] == models  # the models to serve come last
    (http,) = container["ports"]
    assert (http["name"], http["containerPort"]) == ("http", values["endpoint"]["port"])
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert not security["allowPrivilegeEscalation"]
    # what it writes lives on volumes: MODELFACTORY_HOME (the image's) and /tmp
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/lib/modelfactory", "/tmp"} <= mounts
    assert {"name": "modelfactory-env"} in [e["secretRef"] for e in container["envFrom"]]


def test_the_probes_answer_as_the_chart_expects_on_a_real_endpoint() -> None:
    """Before any model has a version, the app is alive (liveness 200) but not ready
    (readiness 503): a new replica gets no traffic until its models are loaded."""
    container = endpoint_container(render())
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness")}
    readiness = container["readinessProbe"]["httpGet"]
    assert {p["port"] for p in [*probes.values(), readiness]} == {"http"}
    projects, broken = discover_projects(REPO / "model_projects")
    assert projects and not broken
    app = create_app(
        projects, registry=model_registry(), rollouts=rollout_store(), home=local_home().ensure()
    )
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        for probe in probes.values():
            assert client.get(probe["path"]).status_code == 200
        not_ready = client.get(readiness["path"])
        assert not_ready.status_code == 503
        assert not_ready.json()["ready"] is False
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
    # deploy/README.md's prometheus-adapter rule: the endpoint's counter -> the HPA's metric
    readme = (REPO / "deploy" / "README.md").read_text()
    (series,) = re.findall(r"seriesQuery: '(\w+)\{", readme)
    (metric,) = re.findall(r"name: \{matches: \w+, as: (\w+)\}", readme)
    assert f"# TYPE {series} counter" in metrics.text
    assert metric == DEFAULTS["endpoint"]["autoscaling"]["requestsPerSecond"]["metric"]

    monitor = one(render(VARIANTS["rps-autoscaling"]), "ServiceMonitor", "endpoint")
    assert [e["path"] for e in monitor["spec"]["endpoints"]] == ["/metrics"]


def test_the_service_monitor_scrapes_the_endpoint() -> None:
    """No JSON schema for the Prometheus Operator's CRD here: the ServiceMonitor is held
    against the Service it must find instead."""
    objects = render(VARIANTS["rps-autoscaling"])
    monitor = one(objects, "ServiceMonitor", "endpoint")
    service = one(objects, "Service", "endpoint")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    with pytest.raises(SchemaNotFoundError):  # why the test above skips it
        kubernetes_validate.validate(monitor, KUBE_VERSIONS[-1], strict=True)


def test_the_pod_size_comes_from_the_model_specs() -> None:
    derived = endpoint_values(REPO / "model_projects")["endpoint"]["resources"]
    assert DEFAULTS["endpoint"]["resources"] == derived, (
        "deploy/helm/modelfactory-serving/values.yaml: endpoint.resources no longer match the "
        "model specs; paste the output of `python -m modelfactory.serving.k8s_values`"
    )
    assert endpoint_container(render())["resources"] == derived
    # The rule itself: the largest model's cpus; the process plus the largest model's memory
    # as the request and plus all of them as the limit.
    small, big = ResourcesSpec(cpus=0.5, memory="512Mi"), ResourcesSpec(cpus=2, memory="3Gi")
    assert endpoint_resources([small, big]) == {
        "requests": {"cpu": "2000m", "memory": f"{BASE_MEMORY_MIB + 3072}Mi"},
        "limits": {"memory": f"{BASE_MEMORY_MIB + 3072 + 512}Mi"},
    }
    with pytest.raises(ValueError, match="no model to serve"):
        endpoint_resources([])


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def test_the_settings_and_secrets_are_the_dagster_charts() -> None:
    """The same non-secret env and Secrets as the Dagster values' code server, and the
    variables the image's dagster.yaml reads, so the endpoint finds the Dagster instance."""
    dagster = yaml.safe_load((CHART.parent / "values.yaml").read_text())
    (code_server,) = dagster["dagster-user-deployments"]["deployments"]
    assert DEFAULTS["env"] == code_server["env"]
    assert DEFAULTS["envSecrets"] == code_server["envSecrets"]
    password = {"name": dagster["global"]["postgresqlSecretName"], "key": "postgresql-password"}
    assert DEFAULTS["postgres"]["passwordSecret"] == password

    instance = (REPO / "deploy" / "dagster.prod.yaml").read_text()
    read = set(re.findall(r"\{env: (\w+)\}", instance))
    assert read >= {"DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD"}
    env = env_of(endpoint_container(render()))
    assert read <= env.keys()
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == password


def test_mlflow_reads_its_password_from_the_dagster_secret() -> None:
    objects = render()
    (container,) = pod_containers(one(objects, "Deployment", "mlflow"))
    secret = env_of(container)["MLFLOW_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "dagster-postgresql-secret", "key": "postgresql-password"}
    (store,) = [a for a in container["args"] if a.startswith("--backend-store-uri=")]
    assert "$(MLFLOW_DB_PASSWORD)" in store  # Kubernetes expands it; the value is not in the spec
    service = one(objects, "Service", "mlflow")
    port = service["spec"]["ports"][0]["port"]
    assert DEFAULTS["env"]["MLFLOW_TRACKING_URI"] == f"http://mlflow:{port}"


# What the validator must refuse, or the tests above could not fail: each broken value
# renders (Helm does not know Kubernetes' schemas) and its object is rejected.
BROKEN = {
    "removed apiVersion": (
        {"endpoint": {"autoscaling": {"apiVersion": "autoscaling/v2beta1"}}},
        "HorizontalPodAutoscaler",
        SchemaNotFoundError,
    ),
    "a string where an integer goes": (
        {"endpoint": {"autoscaling": {"cpu": {"averageUtilization": "seventy"}}}},
        "HorizontalPodAutoscaler",
        ValidationError,
    ),
}


@pytest.mark.parametrize("overrides, kind, error", BROKEN.values(), ids=BROKEN.keys())
def test_the_validator_rejects_a_broken_object(overrides, kind, error) -> None:
    (obj,) = by_kind(render(overrides), kind)
    with pytest.raises(error):
        validate(obj)


def test_strict_validation_rejects_an_unknown_field() -> None:
    deployment = one(render(), "Deployment", "endpoint")
    (container,) = pod_containers(deployment)
    container["livenessProbe"]["httpGet"]["pth"] = "/x"  # a typo of `path`
    with pytest.raises(ValidationError):
        validate(deployment)


def test_the_chart_refuses_a_pdb_that_would_block_every_drain() -> None:
    with pytest.raises(helm_python.HelmError, match="minAvailable"):
        render({"endpoint": {"pdb": {"minAvailable": 2}}})  # the HPA's minReplicas is 2


def test_values_schema_refuses_a_misspelt_key() -> None:
    """values.schema.json: Helm refuses the install, instead of ignoring `replica`."""
    with pytest.raises(helm_python.HelmValuesError, match="replica"):
        render({"endpoint": {"autoscaling": {"enabled": False}, "replica": 3}})
