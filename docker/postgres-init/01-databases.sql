-- One PostgreSQL server, two databases, each owned by its own non-superuser role:
-- `airflow` (Airflow's metadata) and `mlflow` (MLflow's backend store, with the runbook's
-- user/password/database mlflow/mlflow/mlflow). The postgres image runs this file once, when
-- the data volume is empty; changing it later needs `docker compose down -v` (data is lost).
CREATE ROLE airflow WITH LOGIN PASSWORD 'airflow';
CREATE DATABASE airflow OWNER airflow;

CREATE ROLE mlflow WITH LOGIN PASSWORD 'mlflow';
CREATE DATABASE mlflow OWNER mlflow;

-- Neither role may connect to the other's database.
REVOKE CONNECT ON DATABASE airflow FROM PUBLIC;
REVOKE CONNECT ON DATABASE mlflow FROM PUBLIC;
