"""The production profile on real parts: Postgres, an MLflow server, S3, Snowflake's SQL.

- Dagster's instance is deploy/dagster.prod.yaml itself, on a throwaway Postgres database.
- MLflow is a real `mlflow server` subprocess with a Postgres backend store and an S3
  artifact root served by a real `moto` server subprocess (S3's API on localhost).
- Snowflake is fakesnow (Snowflake's SQL on DuckDB) behind the real dagster-snowflake
  resource and IO manager; only the connector's `connect` and `write_pandas` are redirected.

These tests need the PostgreSQL server at 127.0.0.1:5432 (user postgres, no password) and
skip, saying so, only when no server answers there.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from conftest import EXAMPLES, REPO, LiveServer, free_port
from modelfactory.errors import ProfileError
from modelfactory.stores.profile import branch_identifier, current_profile

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
BUCKET = "mf-prod-test"
BIN = Path(sys.executable).parent


def _postgres_answers() -> bool:
    import psycopg2

    try:
        psycopg2.connect(dbname="postgres", connect_timeout=3, **PG).close()
    except psycopg2.OperationalError:
        return False
    return True


needs_postgres = pytest.mark.skipif(
    not _postgres_answers(), reason="no PostgreSQL server answers at 127.0.0.1:5432"
)


# -- real servers, once per module -------------------------------------------------------


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """Three throwaway databases: Dagster's storage, MLflow's store, the rollout table."""
    import psycopg2

    suffix = uuid.uuid4().hex[:8]
    names = {role: f"mf_{role}_{suffix}" for role in ("dagster", "mlflow", "serving")}
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        for name in names.values():
            cur.execute(f"CREATE DATABASE {name}")
    yield names
    with admin.cursor() as cur:
        for name in names.values():
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto server subprocess: S3's API on localhost, with the test bucket."""
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"{url}/moto-api/", proc, "moto_server")
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **_AWS_KEYS)
        s3.create_bucket(Bucket=BUCKET)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


_AWS_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def mlflow_server(
    databases: dict[str, str], s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`mlflow server` on Postgres, proxying artifacts to s3://BUCKET/mlflow."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("mlflow") / "server.log"
    env = {**os.environ, **_AWS_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    env.update(AWS_REGION="us-east-1", AWS_ENDPOINT_URL=s3_endpoint)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"postgresql+psycopg2://postgres@127.0.0.1:5432/{databases['mlflow']}",
                "--artifacts-destination",
                f"s3://{BUCKET}/mlflow",
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_http(f"{url}/health", proc, f"mlflow server (log: {log})", timeout=120)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def _wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout}s")


# -- Snowflake: fakesnow behind the real dagster-snowflake resource ----------------------


@pytest.fixture(scope="module")
def fake_snowflake() -> Iterator[None]:
    """One fake Snowflake account for the module: what one test writes, the next can read."""
    import fakesnow
    import snowflake.connector.errors as sf_errors
    from fakesnow.cursor import FakeSnowflakeCursor

    # Snowflake says a missing table "does not exist or not authorized", and dagster-snowflake
    # relies on that wording before a table's first write; fakesnow passes on DuckDB's
    # wording instead. This restores Snowflake's (the fake's fidelity, not our code's).
    original = FakeSnowflakeCursor._execute

    @functools.wraps(original)
    def execute(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        except sf_errors.ProgrammingError as exc:
            missing = re.search(r"Table with name (\S+) does not exist", exc.msg or "")
            if exc.errno != 2003 or not missing:
                raise
            message = (
                f"SQL compilation error:\nTable '{missing[1]}' does not exist or not authorized."
            )
            raise sf_errors.ProgrammingError(msg=message, errno=2003, sqlstate="42S02") from exc

    FakeSnowflakeCursor._execute = execute
    handler = "dagster_snowflake_pandas.snowflake_pandas_type_handler.write_pandas"
    try:
        with fakesnow.patch(extra_targets=[handler]):
            yield
    finally:
        FakeSnowflakeCursor._execute = original


SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "acme-test",
    "SNOWFLAKE_USER": "modelfactory",
    "SNOWFLAKE_PASSWORD": "not-a-secret",
    "SNOWFLAKE_DATABASE": "ANALYTICS",
}


@pytest.fixture(scope="module")
def production_env(
    databases: dict[str, str],
    s3_endpoint: str,
    mlflow_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """MODELFACTORY_PROFILE=production on the real servers, with one home for the module;
    DAGSTER_HOME holds deploy/dagster.prod.yaml as its dagster.yaml (the Postgres database)."""
    home = tmp_path_factory.mktemp("production-home")
    (home / "dagster").mkdir()
    shutil.copy(REPO / "deploy" / "dagster.prod.yaml", home / "dagster" / "dagster.yaml")
    return {
        "MODELFACTORY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "MODELFACTORY_PROFILE": "production",
        "MODELFACTORY_S3_BUCKET": BUCKET,
        "MLFLOW_TRACKING_URI": mlflow_server,
        "MODELFACTORY_SERVING_DB": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{databases['serving']}",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_REGION": "us-east-1",  # only AWS_REGION: s3_files passes it on to boto3
        "DAGSTER_PG_HOST": PG["host"],
        "DAGSTER_PG_PORT": str(PG["port"]),
        "DAGSTER_PG_USER": PG["user"],
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": databases["dagster"],
        **SNOWFLAKE_ENV,
        **_AWS_ENV,
    }


def _apply(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("MODELFACTORY_BRANCH", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def trained(production_env: dict[str, str], fake_snowflake: None) -> dict[str, str]:
    """Both examples' train jobs, run once on the production stack; their run ids by model.
    demand_forecast trains its uk segment: one run is what each segment costs.

    Training is what costs here (each version goes through the MLflow server to S3), so the
    module's tests share these runs and check different things about them.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        _apply(production_env, monkeypatch)
        return {model: _train(model) for model in ("demand_forecast", "breast_cancer")}


@pytest.fixture
def production(
    production_env: dict[str, str], fake_snowflake: None, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """This test runs in the production profile; returns the Dagster home."""
    _apply(production_env, monkeypatch)
    return Path(production_env["DAGSTER_HOME"])


SEGMENTS = {"demand_forecast": "uk"}  # the segment each segmented example trains here


def _train(model: str) -> str:
    """Run MODEL's train job (the full graph up to the endpoint; of one segment, for a
    segmented model) on the configured instance."""
    from dagster import DagsterInstance

    from modelfactory.orchestration.assets import train_job_name
    from modelfactory.orchestration.definitions import build_definitions
    from modelfactory.orchestration.runs import seed_data
    from modelfactory.project.loader import load_project

    project = load_project(EXAMPLES / model)
    seed_data(project)
    defs = build_definitions(project)
    with DagsterInstance.get() as instance:
        job = defs.resolve_job_def(train_job_name(model))
        result = job.execute_in_process(instance=instance, partition_key=SEGMENTS.get(model))
        assert result.success, f"{model}'s train job failed"
        return result.run_id


@needs_postgres
def test_examples_train_on_the_production_stack(
    production: Path, trained: dict[str, str], databases: dict[str, str]
):
    import boto3
    import psycopg2
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus

    from modelfactory.orchestration.definitions import build_definitions
    from modelfactory.project.loader import load_project
    from modelfactory.reports.reproduce import reproduce
    from modelfactory.stores.home import audit_log, model_registry, snowflake_resource

    run_ids = trained

    # Dagster kept the runs in Postgres (deploy/dagster.prod.yaml, loaded as it is).
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        for run_id in run_ids.values():
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
    with psycopg2.connect(dbname=databases["dagster"], **PG) as con, con.cursor() as cur:
        cur.execute("SELECT run_id FROM runs")
        assert set(run_ids.values()) <= {row[0] for row in cur.fetchall()}

    # The UI labels the warehouse's assets with the engine that holds them.
    defs = build_definitions(load_project(EXAMPLES / "demand_forecast"))
    features = AssetKey(["demand_forecast", "features"])
    assert "snowflake" in defs.resolve_assets_def(features).specs_by_key[features].kinds

    # Features round-trip through Snowflake: the IO manager wrote uk's partition of them
    # (segments.by is its partition column), SQL reads them back.
    with snowflake_resource().get_connection() as con:
        features = con.cursor().execute("SELECT * FROM DEMAND_FORECAST.FEATURES").fetch_pandas_all()
    assert len(features) > 1000 and "UNITS_SOLD" in features.columns
    assert set(features["MARKETPLACE"]) == {"uk"}

    # The registry is the MLflow server; versions load back through it from S3.
    registry = model_registry()
    assert registry.champion("demand_forecast.uk").version == "1"  # policy auto: promoted
    assert registry.champion("demand_forecast.de") is None  # not trained here
    assert registry.champion("breast_cancer") is None  # policy manual: waits for a person
    assert registry.version_by_alias("breast_cancer", "challenger").version == "1"
    for unit in ("demand_forecast.uk", "breast_cancer"):
        assert hasattr(registry.load(unit, "1"), "predict")
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], **_AWS_KEYS)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.startswith("mlflow/") and k.endswith("MLmodel") for k in keys)
    assert any(k.startswith("modelfactory/storage/demand_forecast/") for k in keys)
    # Each version's training data is kept in S3 under its content hash, for reproduce.
    snapshot = registry.champion("demand_forecast.uk").tags["mf.snapshot"]
    assert snapshot.startswith(f"s3://{BUCKET}/modelfactory/snapshots/demand_forecast.uk/")
    assert snapshot.removeprefix(f"s3://{BUCKET}/") in keys
    rebuilt = reproduce(  # fetched back from S3, checked against its hash, retrained
        load_project(EXAMPLES / "demand_forecast"),
        "demand_forecast.uk",
        "1",
        registry=registry,
        audit=audit_log(),
        tolerance=1e-3,
    )
    assert rebuilt.matches and rebuilt.same_code, rebuilt.describe()

    # The endpoint asset recorded its rollout in the Postgres rollout table, and the audit
    # trail sits beside it: each training run, keyed by its Dagster run id.
    with psycopg2.connect(dbname=databases["serving"], **PG) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert cur.fetchone()[0] >= 1
        cur.execute("SELECT unit, dagster_run_id FROM mf_training_runs")
        audited = set(cur.fetchall())
        cur.execute("SELECT unit, event, to_version FROM mf_alias_moves")
        moves = set(cur.fetchall())
    assert ("demand_forecast.uk", run_ids["demand_forecast"]) in audited
    assert ("breast_cancer", run_ids["breast_cancer"]) in audited
    assert ("demand_forecast.uk", "promote", "1") in moves  # breast_cancer awaits approval
    serving = audit_log().serving_at("demand_forecast.uk", datetime.now(UTC))  # timestamptz
    assert serving is not None and serving.version == "1" and serving.at.tzinfo == UTC


@needs_postgres
def test_a_branch_trains_and_promotes_without_touching_production(
    production: Path, trained: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    from modelfactory.stores.home import model_registry, snowflake_resource

    unit = "demand_forecast.uk"
    production_history = model_registry().history(unit)
    assert production_history  # production's champion, v1, from `trained`

    monkeypatch.setenv("MODELFACTORY_BRANCH", "feature/Bigger-Trees")
    _train("demand_forecast")
    branch = model_registry()
    assert branch.namespace == "feature_bigger_trees__"
    assert branch.champion(unit).version == "1"  # its own first champion
    assert branch.history(unit)[0].from_version is None

    monkeypatch.delenv("MODELFACTORY_BRANCH")
    main = model_registry()
    assert main.history(unit) == production_history  # not moved by the branch
    with snowflake_resource().get_connection() as con:
        schemas = {
            row[0].upper()
            for row in con.cursor()
            .execute("SELECT schema_name FROM information_schema.schemata")
            .fetchall()
        }
    assert {"DEMAND_FORECAST", "FEATURE_BIGGER_TREES__DEMAND_FORECAST"} <= schemas


@needs_postgres
def test_the_endpoint_logs_to_snowflake_archives_to_s3_and_reads_labels_from_s3(
    production: Path, trained: dict[str, str]
):
    """`modelfactory serve` in production: the champion from the MLflow server answers, the
    requests reach the Snowflake inference log, the raw spool is archived to S3 when the
    server stops, and label files dropped in S3 join the logged predictions."""
    import boto3
    import httpx

    from modelfactory.ml.live import find_labels
    from modelfactory.project.loader import load_project
    from modelfactory.serving import create_app
    from modelfactory.serving.app import ServingSettings
    from modelfactory.stores.home import (
        inference_store,
        label_folder,
        local_home,
        model_registry,
        rollout_store,
    )
    from modelfactory.stores.inference_reader import read_inference_log, read_labelled

    model, unit = "demand_forecast", "demand_forecast.uk"  # uk's champion answers uk's rows
    app = create_app(
        [load_project(EXAMPLES / model)],
        registry=model_registry(),
        rollouts=rollout_store(),
        home=local_home().ensure(),
        settings=ServingSettings(refresh_seconds=0.2, flush_seconds=0.2),
    )
    row = {"marketplace": "uk", "price": 9.5, "promo": 1, "temperature": 20.0, "is_weekend": 0}
    answers = []
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(5):
            rows = [row, {**row, "price": 10.0 + i}]
            response = client.post(f"/models/{model}/predict", json={"rows": rows})
            assert response.status_code == 200, response.text
            answers.append(response.json())
    request_ids = [a["request_id"] for a in answers]
    assert {p["version"] for a in answers for p in a["predictions"]} == {"1"}

    # Stopping the server flushed every answered row into Snowflake ...
    store = inference_store(unit)
    log = read_inference_log(store, unit)
    mine = log[log["request_id"].isin(request_ids)]
    assert len(mine) == 10 and set(mine["model_version"]) == {"1"}
    # ... and archived the raw spool to S3, leaving nothing on the endpoint's disk.
    assert not list(local_home().capture(unit).glob("*.jsonl"))
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], **_AWS_KEYS)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    prefix = f"modelfactory/inference_log/{unit}/{day}/"
    archived = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    assert len(archived) == 1, f"expected one archived segment under {prefix}"
    raw = s3.get_object(Bucket=BUCKET, Key=archived[0]["Key"])["Body"].read().decode()
    assert [json.loads(line)["request_id"] for line in raw.splitlines()] == request_ids

    # Labels land in S3; the readers see them as files, fetched again only when they change.
    labels_key = f"modelfactory/labels/{model}/2026/day-1.csv"
    first_three = pd.DataFrame(
        {"request_id": request_ids[:3], "row_index": [0, 1, 0], "units_sold": [10.0, 11.0, 12.0]}
    )
    s3.put_object(Bucket=BUCKET, Key=labels_key, Body=first_three.to_csv(index=False).encode())
    labels = find_labels(label_folder(model))
    assert [f.name for f in labels.files] == ["2026__day-1.csv"]
    labelled = read_labelled(store, unit, labels.files, target="units_sold")
    assert sorted(labelled["label"]) == [10.0, 11.0, 12.0]
    assert set(labelled["model_version"].astype(str)) == {"1"}
    assert find_labels(label_folder(model)).fingerprint == labels.fingerprint  # unchanged
    s3.put_object(Bucket=BUCKET, Key=labels_key, Body=first_three[:1].to_csv(index=False).encode())
    assert find_labels(label_folder(model)).fingerprint != labels.fingerprint  # replaced
    s3.delete_object(Bucket=BUCKET, Key=labels_key)
    assert find_labels(label_folder(model)).files == []  # removed upstream, removed here


def test_the_inference_log_round_trips_through_snowflake(
    fake_snowflake: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from modelfactory.serving.capture import CaptureFlusher, CaptureSpool
    from modelfactory.stores.home import inference_store
    from modelfactory.stores.inference_log import SnowflakeStore
    from modelfactory.stores.inference_reader import (
        read_inference_log,
        read_labelled,
        read_window,
        version_stats,
    )

    for key, value in {**SNOWFLAKE_ENV, **_PRODUCTION_REST}.items():
        monkeypatch.setenv(key, value)
    store = inference_store("m")
    assert isinstance(store, SnowflakeStore) and store.schema == "m"

    spool = CaptureSpool(tmp_path / "spool")
    now = datetime.now(UTC).replace(tzinfo=None)
    for i in range(6):
        spool.append(json.dumps(_record(f"r{i}", now + timedelta(seconds=i), i)).encode())
    spool.append(b'{"torn": ')  # a half-written last line waits for its end
    flusher = CaptureFlusher("m", spool, store)
    assert flusher.flush() == 12  # two input rows per request
    assert flusher.flush() == 0  # the offset committed with the rows: nothing twice

    log = read_inference_log(store, "m")
    assert len(log) == 12 and set(log["model_version"]) == {"1", "2"}
    assert json.loads(log["features"].iloc[0]) == {"x": 0.0, "y": "a"}
    stats = {
        s.version: s
        for s in version_stats(store, "m", since=datetime.now(UTC) - timedelta(hours=1))
    }
    assert stats["2"].requests == 3 and stats["2"].errors == 1
    window, first, last = read_window(store, "m", after=None, limit=4)
    assert list(window.columns) == ["x", "y"] and len(window) == 4 and first < last

    labels = tmp_path / "labels"
    labels.mkdir()
    pd.DataFrame({"request_id": ["r0", "r1"], "row_index": [0, 1], "target": [1.0, 2.0]}).to_csv(
        labels / "001.csv", index=False
    )
    pd.DataFrame({"request_id": ["r1"], "row_index": [1], "target": [5.0]}).to_csv(
        labels / "002.csv",
        index=False,  # a later file corrects an earlier one
    )
    labelled = read_labelled(store, "m", sorted(labels.iterdir()), target="target")
    assert sorted(labelled["label"]) == [1.0, 5.0]


_PRODUCTION_REST = {
    "MODELFACTORY_PROFILE": "production",
    "MODELFACTORY_S3_BUCKET": BUCKET,
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
    "MODELFACTORY_SERVING_DB": "sqlite://",
}


def _record(request_id: str, at: datetime, i: int) -> dict:
    """A spooled record as the endpoint writes it: one request of two input rows."""
    failed = i == 5
    return {
        "request_id": request_id,
        "received_at": at.isoformat(),
        "model_version": "1" if i < 3 else "2",
        "role": "stable" if i < 3 else "canary",
        "status": "error" if failed else "ok",
        "error": "boom" if failed else None,
        "latency_ms": 3.0 + i,
        "inputs": [{"x": float(i), "y": "a"}, {"x": float(i) + 0.5, "y": "b"}],
        "outputs": [] if failed else [float(i), float(i) + 1],
        "scores": [],
    }


# -- the switch itself -------------------------------------------------------------------


def test_the_production_profile_names_every_missing_variable(monkeypatch: pytest.MonkeyPatch):
    from modelfactory.orchestration.resources import project_resources

    for key in (*SNOWFLAKE_ENV, *_PRODUCTION_REST):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MODELFACTORY_PROFILE", "production")
    with pytest.raises(ProfileError) as error:
        project_resources("demand_forecast")
    for variable in ("SNOWFLAKE_ACCOUNT", "MODELFACTORY_S3_BUCKET", "MLFLOW_TRACKING_URI"):
        assert variable in str(error.value)

    monkeypatch.setenv("MODELFACTORY_PROFILE", "prod")
    with pytest.raises(ProfileError, match="must be 'local' or 'production', got 'prod'"):
        current_profile()


@pytest.mark.parametrize(
    ("branch", "identifier"),
    [
        ("main", ""),
        ("master", ""),
        ("feature/New-Model", "feature_new_model"),
        ("123-fix", "b_123_fix"),
        ("  ", ""),
    ],
)
def test_branch_names_become_identifiers(branch: str, identifier: str):
    assert branch_identifier(branch) == identifier


def test_ci_builds_name_the_branch(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MODELFACTORY_BRANCH", raising=False)
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("GITHUB_HEAD_REF", "feature/drift")
    assert current_profile().namespace == "feature_drift__"
    monkeypatch.setenv("MODELFACTORY_BRANCH", "main")  # set explicitly, it wins
    assert current_profile().namespace == ""
