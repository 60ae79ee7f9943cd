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
# Migrate once per metadata database (shared with `make airflow`).
scripts/airflow.sh migrate || exit 1

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
