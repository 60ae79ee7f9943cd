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

log() { printf '[stack] %s\n' "$*" >&2; }

alive() {  # alive NAME: the pid file names a live process that we started
  local pidfile=$RUN/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  # Guard against a recycled pid: the process must still be running the command we started.
  kill -0 "$pid" 2>/dev/null && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$(head -n1 "$RUN/$1.cmd")"
}

wait_http() {  # wait_http URL SECONDS NAME
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      log "$3 did not answer $1 within $2 s; last log lines:"
      tail -n 30 "$LOGS/$3.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

start() {  # start NAME CMD...: in its own session, so `down` can stop the whole group
  local name=$1; shift
  if alive "$name"; then log "$name already running (pid $(cat "$RUN/$name.pid"))"; return 0; fi
  echo "$1" > "$RUN/$name.cmd"
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
  log "started $name (pid $!), log: $LOGS/$name.log"
}

token() {
  if [ -n "${WINE_MODEL_SERVER_TOKEN:-}" ]; then printf '%s' "$WINE_MODEL_SERVER_TOKEN"; return; fi
  if [ ! -s "$STATE/model-server.token" ]; then
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$STATE/model-server.token")
  fi
  cat "$STATE/model-server.token"
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
    start model-server "$VENV/bin/python" -m wine_quality.serving \
      --host "$MODEL_SERVER_HOST" --port "$MODEL_SERVER_PORT"
  )
  wait_http "http://$MODEL_SERVER_HOST:$MODEL_SERVER_PORT/served-model" 90 model-server
  log "MLflow UI: http://$MLFLOW_HOST:$MLFLOW_PORT  model server: http://$MODEL_SERVER_HOST:$MODEL_SERVER_PORT"
}

stop() {  # stop NAME: TERM the process group we started, then KILL what is left
  local name=$1 pid
  if ! alive "$name"; then rm -f "$RUN/$name.pid" "$RUN/$name.cmd"; return 0; fi
  pid=$(cat "$RUN/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid" "$RUN/$name.cmd"
  log "stopped $name (pid $pid)"
}

down() { stop model-server; stop mlflow; }

status() {
  for name in mlflow model-server; do
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
