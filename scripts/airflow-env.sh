# The pipeline's environment for every Airflow process: `airflow dags test` (run-dag.sh) and the
# long-running components of `make airflow` (airflow.sh), whose task runners inherit it, and a
# Celery worker alike. One place, so a task behaves the same whoever runs it. Sourced, never run.
#
# A self-contained Airflow home under .local (SQLite unless AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
# says otherwise), this repo's dags/, plugins/ and include/, and what the tasks reach: MLflow,
# the model server (URL and reload token), the staging area and the S3 connection.
ROOT=${ROOT:-$(pwd)}
STATE=${WINE_STATE_DIR:-$ROOT/.local}
mkdir -p "$STATE"

# `secret FILE`: generated once into $STATE, shared with stack.sh and airflow.sh.
. "$ROOT/scripts/procs.sh"

export AIRFLOW_HOME=${AIRFLOW_HOME:-$STATE/airflow}
mkdir -p "$AIRFLOW_HOME"
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=${AIRFLOW__CORE__UNIT_TEST_MODE:-False}
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}
# On SQLite every writer waits for the one before it. Python's sqlite3 gives up after 5 s with
# "database is locked", and on a busy 2-core machine the UI's "Unpause on trigger" (a PATCH sent
# alongside the trigger's POST) lost that race: the run was created, the DAG stayed paused, and
# the run sat queued for good. Waiting longer costs nothing when there is no contention.
case "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in
  sqlite*)
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS:-wine_quality.core.runtime.SQLITE_CONNECT_ARGS}
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC:-wine_quality.core.runtime.SQLITE_CONNECT_ARGS}
    ;;
esac
export AIRFLOW__CORE__EXECUTOR=${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}
# Sized to the machine, not Airflow's default of 32 task processes (on 2 cores: 4).
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-$(( $(nproc) * 2 ))}
# The API server (UI, REST and the execution API the task runners report to), loopback only.
export AIRFLOW_API_HOST=${AIRFLOW_API_HOST:-127.0.0.1}
export AIRFLOW_API_PORT=${AIRFLOW_API_PORT:-8080}
export AIRFLOW__API__HOST=$AIRFLOW_API_HOST
export AIRFLOW__API__PORT=$AIRFLOW_API_PORT
export AIRFLOW__API__BASE_URL=${AIRFLOW__API__BASE_URL:-http://$AIRFLOW_API_HOST:$AIRFLOW_API_PORT}
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-$AIRFLOW__API__BASE_URL/execution/}
# Every component must sign and check the same tokens: generated once, kept in .local.
AIRFLOW__API_AUTH__JWT_SECRET=${AIRFLOW__API_AUTH__JWT_SECRET:-$(secret airflow-jwt.secret)}
export AIRFLOW__API_AUTH__JWT_SECRET
AIRFLOW__API__SECRET_KEY=${AIRFLOW__API__SECRET_KEY:-$(secret airflow-api.secret)}
export AIRFLOW__API__SECRET_KEY
# The UI login: user admin, password WINE_AIRFLOW_PASSWORD or one generated once (airflow.sh
# writes it where the simple auth manager reads it).
# `pipeline` (role user) is the tasks' own login: the summary writes the run's decision as the
# run's note through the REST API (the task SDK cannot set notes).
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin,pipeline:user}
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$STATE/airflow-passwords.json
export WINE_AIRFLOW_API_URL=${WINE_AIRFLOW_API_URL:-$AIRFLOW__API__BASE_URL}
export WINE_AIRFLOW_API_USER=${WINE_AIRFLOW_API_USER:-pipeline}
WINE_AIRFLOW_API_PASSWORD=${WINE_AIRFLOW_API_PASSWORD:-$(secret airflow-pipeline.password)}
export WINE_AIRFLOW_API_PASSWORD
# A worker's name in the task instance records (distinct per Celery worker on one machine).
export AIRFLOW__CORE__HOSTNAME_CALLABLE=${AIRFLOW__CORE__HOSTNAME_CALLABLE:-wine_quality.core.runtime.hostname}

export PYTHONPATH="$ROOT/include${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$ROOT/.venv/bin:$PATH"
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-http://${MLFLOW_HOST:-127.0.0.1}:${MLFLOW_PORT:-5000}}
export WINE_MODEL_SERVER_URL=${WINE_MODEL_SERVER_URL:-http://${MODEL_SERVER_HOST:-127.0.0.1}:${MODEL_SERVER_PORT:-1234}}
# The same token the model server was started with (stack.sh reads the same file).
WINE_MODEL_SERVER_TOKEN=${WINE_MODEL_SERVER_TOKEN:-$(secret model-server.token)}
export WINE_MODEL_SERVER_TOKEN
export WINE_STAGING_URI=${WINE_STAGING_URI:-$STATE/staging}
# The data source: WINE_DATA_URI as given (environment or .env), remembered in .local so that
# `make airflow` after `WINE_DATA_URI=... make run` reads the same data (a local path made
# absolute: task runners need not share the caller's working directory).
if [ -n "${WINE_DATA_URI:-}" ]; then
  case "$WINE_DATA_URI" in *://*) ;; *) [ -e "$WINE_DATA_URI" ] && WINE_DATA_URI=$(realpath "$WINE_DATA_URI") ;; esac
  printf '%s\n' "$WINE_DATA_URI" > "$STATE/data-uri"
elif [ -s "$STATE/data-uri" ]; then
  WINE_DATA_URI=$(cat "$STATE/data-uri")
fi
[ -n "${WINE_DATA_URI:-}" ] && export WINE_DATA_URI
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
export GX_ANALYTICS_ENABLED=false
# MLflow's client retries 7 times with exponential back-off by default (minutes of sleeping in
# one attempt); keep a task's own retries short and let Airflow's retries do the waiting.
export MLFLOW_HTTP_REQUEST_MAX_RETRIES=${MLFLOW_HTTP_REQUEST_MAX_RETRIES:-3}
export MLFLOW_HTTP_REQUEST_TIMEOUT=${MLFLOW_HTTP_REQUEST_TIMEOUT:-60}
# Tasks reach MLflow's artifact store through the tracking server only: they never hold its
# storage keys. Data in S3 is read through the Airflow connection WINE_S3_CONN_ID (wine_s3),
# AIRFLOW_CONN_WINE_S3 in this environment.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN MLFLOW_S3_ENDPOINT_URL
