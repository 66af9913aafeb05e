"""The addresses of the UIs people open from a link (Dagster, MLflow, the endpoint): the one
place that decides them, for asset metadata, model cards and alerts."""

from __future__ import annotations

import os

__all__ = [
    "SERVICE_URLS",
    "dagster_asset_url",
    "dagster_run_url",
    "endpoint_url",
    "service_url",
    "service_url_env",
]


# The UIs people open from a link, each with the variable that says where it is. Unset, a link
# points at localhost on the port `modelfactory dev` uses by default.
SERVICE_URLS = {
    "dagster": ("MODELFACTORY_DAGSTER_URL", 3000),
    "mlflow": ("MODELFACTORY_MLFLOW_UI", 5000),
    "endpoint": ("MODELFACTORY_ENDPOINT_URL", 8000),
}


def service_url(service: str) -> str:
    """The base URL of `service` ("dagster", "mlflow" or "endpoint") for the links the
    platform writes (asset metadata, model cards, alerts): the one place that decides it."""
    variable, port = SERVICE_URLS[service]
    return (os.environ.get(variable) or f"http://localhost:{port}").rstrip("/")


def service_url_env(ports: dict[str, int], host: str = "localhost") -> dict[str, str]:
    """The variables that point every link at the services started on `ports` (by service
    name); a variable already set wins, as it names the address people really use (a proxy,
    a forwarded port)."""
    return {
        variable: os.environ.get(variable) or f"http://{host}:{ports[service]}"
        for service, (variable, _) in SERVICE_URLS.items()
    }


def endpoint_url() -> str:
    """Where the endpoint answers, for links in the UI."""
    return service_url("endpoint")


def dagster_run_url(run_id: str) -> str:
    """A run's page in the Dagster UI, for alerts."""
    return f"{service_url('dagster')}/runs/{run_id}"


def dagster_asset_url(*path: str) -> str:
    """An asset's page in the Dagster UI: its history, metadata plots and lineage."""
    return f"{service_url('dagster')}/assets/{'/'.join(path)}"
