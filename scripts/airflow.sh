#!/usr/bin/env bash
# `make airflow`: Airflow itself beside the local stack — the API server (UI, REST API and the
# execution API the task runners report to) on 127.0.0.1:8080, the scheduler, the DAG processor
# and the triggerer — in the background with pid files like `make up`. `make down` stops them
# with the rest. LocalExecutor by default; `worker NAME` adds a Celery worker when
# AIRFLOW__CORE__EXECUTOR=CeleryExecutor. Every process gets the pipeline's environment from
# scripts/airflow-env.sh, the same file `airflow dags test` uses.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. "$ROOT/scripts/dotenv.sh"
STATE=${WINE_STATE_DIR:-$ROOT/.local}
RUN=$STATE/run
LOGS=$STATE/logs
mkdir -p "$RUN" "$LOGS"
LOG_TAG=airflow
. "$ROOT/scripts/procs.sh"

COMPONENTS=(airflow-api-server airflow-scheduler airflow-dag-processor airflow-triggerer)

pipeline_env() { . "$ROOT/scripts/airflow-env.sh"; }

migrate() {  # once per metadata database (the stamp is keyed by the connection string)
  local stamp
  stamp="$AIRFLOW_HOME/.migrated-$(printf '%s' "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" | sha256sum | cut -c1-12)"
  [ -f "$stamp" ] && return 0
  airflow db migrate > "$LOGS/airflow-db-migrate.log" 2>&1 || {
    log "airflow db migrate failed; see $LOGS/airflow-db-migrate.log"; return 1; }
  touch "$stamp"
}

password() {  # the admin password: WINE_AIRFLOW_PASSWORD, else generated once into .local
  if [ -n "${WINE_AIRFLOW_PASSWORD:-}" ]; then printf '%s' "$WINE_AIRFLOW_PASSWORD"; return; fi
  secret airflow-admin.password
}

workers() {  # the Celery workers this state folder has pid files for
  ls "$RUN" 2>/dev/null | sed -n 's/^\(celery-worker-.*\)\.pid$/\1/p'
}

write_passwords() {  # where the simple auth manager reads them; it only generates for a missing user
  local pw
  pw=$(password)
  (umask 077; WINE_PW="$pw" python3 -c 'import json, os, sys
json.dump({"admin": os.environ["WINE_PW"],
           os.environ["WINE_AIRFLOW_API_USER"]: os.environ["WINE_AIRFLOW_API_PASSWORD"]}, sys.stdout)' \
    > "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
}

up() {
  "$ROOT/scripts/stack.sh" up
  pipeline_env
  migrate
  write_passwords
  local api=$AIRFLOW__API__BASE_URL
  # One API server worker is plenty for one person and a few task runners.
  start airflow-api-server airflow api-server --host "$AIRFLOW_API_HOST" --port "$AIRFLOW_API_PORT" --workers 1
  # The log servers would bind every interface; on one machine the API server reads the log
  # files directly, so they are off.
  start airflow-scheduler airflow scheduler --skip-serve-logs
  start airflow-dag-processor airflow dag-processor
  start airflow-triggerer airflow triggerer --skip-serve-logs
  wait_http "$api/api/v2/monitor/health" 180 airflow-api-server
  log "Airflow UI: $api  (user admin, password $(password))"
  log "data: ${WINE_DATA_URI:-the public UCI file}; executor: $AIRFLOW__CORE__EXECUTOR, parallelism $AIRFLOW__CORE__PARALLELISM; logs: $LOGS/airflow-*.log"
}

worker() {  # worker NAME [CONCURRENCY]: a Celery worker that records NAME as its host name
  local name=${1:?worker NAME} concurrency=${2:-2}
  pipeline_env
  WINE_WORKER_NAME=$name start "celery-worker-$name" airflow celery worker \
    --celery-hostname "$name@%h" --concurrency "$concurrency" --skip-serve-logs
  # Celery retitles its main process "[celeryd: NAME@host:MainProcess] ... (celery worker ...)":
  # guard the pid file with words both command lines hold, or `down` takes it for a stranger's.
  echo "celery worker --celery-hostname $name@%h" > "$RUN/celery-worker-$name.cmd"
}

down() {
  local name pid
  # A worker's warm shutdown: TERM to its main process alone lets running tasks finish (TERM to
  # the whole group would also reach the pool and kill them); whatever is left is stopped after.
  for name in $(workers); do
    if alive "$name"; then
      pid=$(cat "$RUN/$name.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 240); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    stop "$name" 10
  done
  # The components do not depend on each other to stop: in parallel, each with its own grace.
  for name in "${COMPONENTS[@]}"; do stop "$name" 30 & done
  wait
}

status() {
  local name
  for name in "${COMPONENTS[@]}" $(workers); do
    if alive "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  migrate) pipeline_env; migrate ;;
  password) password; echo ;;
  worker) shift; worker "$@" ;;
  # Any Airflow CLI command in the same environment as the scheduler (e.g. backfill create).
  cli) shift; pipeline_env; exec airflow "$@" ;;
  *) echo "usage: $0 up|down|status|migrate|password|worker NAME [CONCURRENCY]|cli ARGS..." >&2; exit 2 ;;
esac
