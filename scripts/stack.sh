#!/usr/bin/env bash
# Local stack for `make up` / `make down`: the MLflow tracking server and the model server,
# started in the background, bound to 127.0.0.1, with pid files so `down` stops exactly the
# processes `up` started. Settings come from the environment (see .env.example).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/dotenv.sh"
STATE=${WINE_STATE_DIR:-$ROOT/.local}
VENV=${VENV:-$ROOT/.venv}
RUN=$STATE/run
LOGS=$STATE/logs
mkdir -p "$RUN" "$LOGS"
export PATH="$VENV/bin:$PATH"   # mlflow models serve shells out to uvicorn
export PYTHONPATH="$ROOT/include${PYTHONPATH:+:$PYTHONPATH}"

MLFLOW_HOST=${MLFLOW_HOST:-127.0.0.1}
MLFLOW_PORT=${MLFLOW_PORT:-5000}
MODEL_SERVER_HOST=${MODEL_SERVER_HOST:-127.0.0.1}
MODEL_SERVER_PORT=${MODEL_SERVER_PORT:-1234}
BACKEND_URI=${BACKEND_URI:-sqlite:///$STATE/mlflow/mlflow.db}
ARTIFACT_ROOT=${ARTIFACT_ROOT:-$STATE/mlflow/artifacts}

. "$ROOT/scripts/procs.sh"

token() {  # the reload token: WINE_MODEL_SERVER_TOKEN, else one generated once (airflow-env.sh reads it too)
  if [ -n "${WINE_MODEL_SERVER_TOKEN:-}" ]; then printf '%s' "$WINE_MODEL_SERVER_TOKEN"; return; fi
  secret model-server.token
}

up() {
  case "$BACKEND_URI" in sqlite:*) mkdir -p "$STATE/mlflow" ;; esac
  case "$ARTIFACT_ROOT" in s3://*) ;; *) mkdir -p "$ARTIFACT_ROOT" ;; esac
  # One worker and no job runner: ~450 MB instead of ~2.4 GB; enough for one pipeline.
  (
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
    start mlflow "$VENV/bin/mlflow" server --host "$MLFLOW_HOST" --port "$MLFLOW_PORT" \
      --workers 1 --backend-store-uri "$BACKEND_URI" --artifacts-destination "$ARTIFACT_ROOT" \
      --serve-artifacts ${MLFLOW_ALLOWED_HOSTS:+--allowed-hosts "$MLFLOW_ALLOWED_HOSTS"}
  )
  wait_http "http://$MLFLOW_HOST:$MLFLOW_PORT/health" 90 mlflow
  # The model server talks to MLflow over HTTP only: no storage credentials in its environment.
  (
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN MLFLOW_S3_ENDPOINT_URL
    export MLFLOW_TRACKING_URI="http://$MLFLOW_HOST:$MLFLOW_PORT"
    WINE_MODEL_SERVER_TOKEN="$(token)"
    export WINE_MODEL_SERVER_TOKEN
    # Several workers (uvicorn's parent and its children, one process group): `stop` ends all.
    start model-server "$VENV/bin/python" -m wine_quality.serving \
      --host "$MODEL_SERVER_HOST" --port "$MODEL_SERVER_PORT" \
      --workers "${WINE_MODEL_SERVER_WORKERS:-2}"
  )
  wait_http "http://$MODEL_SERVER_HOST:$MODEL_SERVER_PORT/served-model" 90 model-server
  log "MLflow UI: http://$MLFLOW_HOST:$MLFLOW_PORT  model server: http://$MODEL_SERVER_HOST:$MODEL_SERVER_PORT"
}

others() {  # the processes airflow.sh started in this state folder (Airflow, Celery workers)
  local f
  for f in "$RUN"/*.pid; do
    [ -e "$f" ] || continue
    f=${f##*/}; f=${f%.pid}
    case "$f" in mlflow|model-server) ;; *) echo "$f" ;; esac
  done
}

# Everything `make up` and `make airflow` started, and only that: Airflow first (a worker's
# warm shutdown lets a running task finish), then the model server, then MLflow.
down() {
  local name
  "$ROOT/scripts/airflow.sh" down
  for name in $(others); do stop "$name" 30; done
  stop model-server; stop mlflow
}

status() {
  local name
  for name in mlflow model-server $(others); do
    if alive "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  # One service at a time (fault tests, maintenance); `up` restarts whatever is stopped.
  stop) case "${2:-}" in mlflow|model-server) stop "$2" ;; *) echo "stop mlflow|model-server" >&2; exit 2 ;; esac ;;
  status) status ;;
  token) token ;;
  *) echo "usage: $0 up|down|status|token|stop NAME" >&2; exit 2 ;;
esac
