#!/usr/bin/env bash
# `make run`'s last step: run wine_retraining once with `airflow dags test` against the running
# stack, keep its full log, and print the run summary. Exits with the run's status.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/dotenv.sh
. scripts/airflow-env.sh
LOGS=$STATE/logs
mkdir -p "$LOGS"
WINE_MODEL_SERVER_TOKEN=${WINE_MODEL_SERVER_TOKEN:-$(scripts/stack.sh token)}
export WINE_MODEL_SERVER_TOKEN

# Tasks reach MLflow's artifact store through the tracking server only: they never hold its
# storage keys. Data in S3 is read through the Airflow connection WINE_S3_CONN_ID (wine_s3).
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN MLFLOW_S3_ENDPOINT_URL

# Migrate once per metadata database (the stamp is keyed by the connection string).
stamp_file="$AIRFLOW_HOME/.migrated-$(printf '%s' "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" | sha256sum | cut -c1-12)"
if [ ! -f "$stamp_file" ]; then
  airflow db migrate > "$LOGS/airflow-db-migrate.log" 2>&1 || {
    echo "airflow db migrate failed; see $LOGS/airflow-db-migrate.log" >&2; exit 1; }
  touch "$stamp_file"
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
log=$LOGS/dags-test-$stamp.log
export WINE_RUN_SUMMARY_FILE=$STATE/last-run-summary.json
rm -f "$WINE_RUN_SUMMARY_FILE"
conf=()
[ -n "${WINE_DAG_CONF:-}" ] && conf=(--conf "$WINE_DAG_CONF")
echo "running wine_retraining (data: ${WINE_DATA_URI:-public UCI file}); log: $log"
start=$SECONDS
airflow dags test wine_retraining "${conf[@]}" > "$log" 2>&1
rc=$?
echo "dags test finished in $((SECONDS - start)) s with exit code $rc"
if [ -s "$WINE_RUN_SUMMARY_FILE" ]; then
  echo "---- run summary ----"
  cat "$WINE_RUN_SUMMARY_FILE"; echo
fi
if [ $rc -ne 0 ]; then
  echo "---- why it failed ----"
  grep -E "AirflowFailException|Error: |Exception: " "$log" | grep -v "^\s*raise" | sort -u | tail -n 8
fi
exit $rc
