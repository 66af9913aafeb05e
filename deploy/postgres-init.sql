-- Runs once, when the compose `postgres` service starts on an empty volume
-- (/docker-entrypoint-initdb.d). One database per store, owned by POSTGRES_USER (DAGSTER_PG_USER):
--   dagster  Dagster's runs, event logs and schedules (DAGSTER_PG_DB)
--   mlflow   MLflow's runs, metrics and model registry (the mlflow service's --backend-store-uri)
--   serving  the endpoint's rollout table (MODELFACTORY_SERVING_DB)
CREATE DATABASE dagster;
CREATE DATABASE mlflow;
CREATE DATABASE serving;
