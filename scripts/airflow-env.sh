# Sourced by the Makefile's recipes: a self-contained Airflow home under .local (SQLite unless
# AIRFLOW__DATABASE__SQL_ALCHEMY_CONN says otherwise), this repo's dags/, plugins/ and include/.
ROOT=${ROOT:-$(pwd)}
STATE=${WINE_STATE_DIR:-$ROOT/.local}
export AIRFLOW_HOME=${AIRFLOW_HOME:-$STATE/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=${AIRFLOW__CORE__UNIT_TEST_MODE:-False}
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}
export PYTHONPATH="$ROOT/include${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$ROOT/.venv/bin:$PATH"
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-http://${MLFLOW_HOST:-127.0.0.1}:${MLFLOW_PORT:-5000}}
export WINE_MODEL_SERVER_URL=${WINE_MODEL_SERVER_URL:-http://${MODEL_SERVER_HOST:-127.0.0.1}:${MODEL_SERVER_PORT:-1234}}
export WINE_STAGING_URI=${WINE_STAGING_URI:-$STATE/staging}
mkdir -p "$AIRFLOW_HOME"
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
export GX_ANALYTICS_ENABLED=false
# MLflow's client retries 7 times with exponential back-off by default (minutes of sleeping in
# one attempt); keep a task's own retries short and let Airflow's retries do the waiting.
export MLFLOW_HTTP_REQUEST_MAX_RETRIES=${MLFLOW_HTTP_REQUEST_MAX_RETRIES:-3}
export MLFLOW_HTTP_REQUEST_TIMEOUT=${MLFLOW_HTTP_REQUEST_TIMEOUT:-60}
