"""Every link the platform writes follows the addresses its services were started on.

stores/urls.py service_url decides each base URL from the environment; `modelfactory dev` sets
the variables from its ports (service_url_env) before it trains. The end-to-end check, links
read back from a real `modelfactory dev`'s first training, is in test_browser.py.
"""

from __future__ import annotations

import pytest

from modelfactory.stores.home import model_registry
from modelfactory.stores.urls import (
    SERVICE_URLS,
    dagster_asset_url,
    dagster_run_url,
    endpoint_url,
    service_url,
    service_url_env,
)

PORTS = {"dagster": 3999, "mlflow": 5999, "endpoint": 8999}


@pytest.fixture
def no_url_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, _ in SERVICE_URLS.values():
        monkeypatch.delenv(variable, raising=False)


def test_unset_links_point_at_the_default_ports(no_url_variables: None) -> None:
    assert dagster_run_url("abc") == "http://localhost:3000/runs/abc"
    assert endpoint_url() == "http://localhost:8000"
    assert model_registry().version_url("m", "2") == "http://localhost:5000/#/models/m/versions/2"


def test_links_follow_the_ports_dev_was_started_on(
    no_url_variables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in service_url_env(PORTS).items():
        monkeypatch.setenv(variable, value)

    assert dagster_run_url("abc") == "http://localhost:3999/runs/abc"
    assert dagster_asset_url("m", "model_card") == "http://localhost:3999/assets/m/model_card"
    assert endpoint_url() == "http://localhost:8999"
    registry = model_registry()
    assert registry.version_url("m", "2") == "http://localhost:5999/#/models/m/versions/2"
    assert registry.run_url("1", "r") == "http://localhost:5999/#/experiments/1/runs/r"


def test_an_address_set_by_hand_wins_over_the_port(
    no_url_variables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy or a forwarded port, people open another address than localhost:port."""
    monkeypatch.setenv("MODELFACTORY_DAGSTER_URL", "https://dagster.example.com/")

    env = service_url_env(PORTS, host="127.0.0.1")

    assert env["MODELFACTORY_DAGSTER_URL"] == "https://dagster.example.com/"
    assert env["MODELFACTORY_MLFLOW_UI"] == "http://127.0.0.1:5999"
    assert env["MODELFACTORY_ENDPOINT_URL"] == "http://127.0.0.1:8999"
    assert service_url("dagster") == "https://dagster.example.com"  # no double slash in links
