"""
# wine_retraining

Nightly retraining of `ElasticNetWineModel` (UCI red wine quality), promoted only when it is
better than production on the same holdout, and only kept if the deployed endpoint proves it.

`ingest` → `validate` (Great Expectations) → `train` (pyfunc wrapper, logged to MLflow) →
`evaluate` (candidate vs production, same holdout) → `should_promote` → `promote` (registry
alias `production`) → `deploy` (model server on :1234 reloads) → `canary` → on failure
`rollback` (alias back to `previous_production`).

A candidate that is not better ends the run as a **success**, with the decision in the
`evaluate` task's log and on the model version's tags. Deterministic failures (bad data,
a failed canary, a promotion race) fail at once; network errors are retried with back-off.

Trigger by hand with **Trigger DAG w/ config** to change the data source, thresholds, grid or
to force a promotion (recorded as forced). All logic lives in `include/wine_quality`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from airflow.sdk import Param, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowFailException

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_GRID_ALPHAS = [0.001, 0.01, 0.1, 0.5, 1.0]
DEFAULT_GRID_L1_RATIOS = [0.1, 0.5, 0.9, 1.0]


def fail_fast(func: F) -> F:
    """Turn the package's deterministic errors into an immediate failure (no retries)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from wine_quality.errors import PipelineGateError

        try:
            return func(*args, **kwargs)
        except PipelineGateError as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


def _settings():
    from wine_quality.config import Settings

    return Settings.from_env()


def _s3_client(conn_id: str, *uris: str | None):
    """A boto3 client from the Airflow S3 connection, only when some URI is in S3."""
    if not any(uri and uri.startswith("s3://") for uri in uris):
        return None
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).get_conn()


@dag(
    dag_id="wine_retraining",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "mlflow", "wine"],
    doc_md=__doc__,
    default_args={
        "owner": "mlops",
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        # A hung call (a tracking server that accepts but never answers) must end the attempt.
        "execution_timeout": timedelta(minutes=30),
    },
    params={
        "data_uri": Param(
            None,
            type=["null", "string"],
            title="Data source",
            description="Local path, s3:// or https:// URI of the red wine CSV. "
            "Empty: the WINE_DATA_URI environment variable, else the public UCI file.",
        ),
        "min_improvement": Param(
            0.005,
            type="number",
            exclusiveMinimum=0,
            title="Improvement margin",
            description="Candidate RMSE must be at least this much lower than production's.",
        ),
        "max_rmse": Param(0.8, type="number", exclusiveMinimum=0, title="Maximum holdout RMSE"),
        "min_r2": Param(0.25, type="number", maximum=1, title="Minimum holdout R²"),
        "alphas": Param(
            DEFAULT_GRID_ALPHAS,
            type="array",
            items={"type": "number", "exclusiveMinimum": 0},
            minItems=1,
            title="Grid: alpha values",
        ),
        "l1_ratios": Param(
            DEFAULT_GRID_L1_RATIOS,
            type="array",
            items={"type": "number", "minimum": 0, "maximum": 1},
            minItems=1,
            title="Grid: l1_ratio values",
        ),
        "min_rows": Param(500, type="integer", minimum=1, title="Minimum rows in the data"),
        "canary_rows": Param(50, type="integer", minimum=1, maximum=1000, title="Canary rows"),
        "canary_p95_ms": Param(
            500.0, type="number", exclusiveMinimum=0, title="Canary p95 latency budget (ms)"
        ),
        "force_promotion": Param(
            False,
            type="boolean",
            title="Force promotion (emergency)",
            description="Promote even if the candidate is not better. Recorded as forced.",
        ),
    },
)
def wine_retraining() -> None:
    @task(task_display_name="Ingest raw data")
    @fail_fast
    def ingest(**context: Any) -> dict[str, Any]:
        from wine_quality.pipeline import ingest_data

        settings = _settings()
        data_uri = context["params"]["data_uri"]
        logical_date = context.get("logical_date")
        return ingest_data(
            data_uri=data_uri,
            settings=settings,
            snapshot_key=logical_date.isoformat() if logical_date else context["run_id"],
            s3_client=_s3_client(
                settings.s3_conn_id, data_uri or settings.data_uri, settings.staging_uri
            ),
        )

    @task(task_display_name="Validate data (GX)")
    @fail_fast
    def validate(ingested: dict[str, Any], **context: Any) -> dict[str, Any]:
        from wine_quality.pipeline import validate_data

        settings = _settings()
        return validate_data(
            ingested=ingested,
            settings=settings,
            s3_client=_s3_client(settings.s3_conn_id, ingested["snapshot_uri"]),
            airflow_run_id=context["run_id"],
            min_rows=context["params"]["min_rows"],
        )

    @task(task_display_name="Train and register candidate")
    @fail_fast
    def train(ingested: dict[str, Any], validated: dict[str, Any], **context: Any) -> dict:
        from wine_quality.pipeline import train_candidate

        settings = _settings()
        return train_candidate(
            ingested=ingested,
            settings=settings,
            s3_client=_s3_client(settings.s3_conn_id, ingested["snapshot_uri"]),
            alphas=context["params"]["alphas"],
            l1_ratios=context["params"]["l1_ratios"],
            dag_id=context["dag"].dag_id,
            airflow_run_id=context["run_id"],
        )

    @task(task_display_name="Compare with production")
    @fail_fast
    def evaluate(candidate: dict[str, Any], **context: Any) -> dict[str, Any]:
        from wine_quality.pipeline import compare_candidate

        params = context["params"]
        return compare_candidate(
            candidate=candidate,
            settings=_settings(),
            max_rmse=params["max_rmse"],
            min_r2=params["min_r2"],
            min_improvement=params["min_improvement"],
            force=params["force_promotion"],
            airflow_run_id=context["run_id"],
        )

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def should_promote(decision: dict[str, Any]) -> bool:
        print("decision:", "; ".join(decision["reasons"]))
        return bool(decision["promote"])

    @task(task_display_name="Promote to production")
    @fail_fast
    def promote(decision: dict[str, Any], **context: Any) -> dict[str, Any]:
        from wine_quality.pipeline import promote_candidate

        return promote_candidate(
            decision=decision, settings=_settings(), airflow_run_id=context["run_id"]
        )

    @task(task_display_name="Deploy to model server")
    @fail_fast
    def deploy(promotion: dict[str, Any]) -> dict[str, Any]:
        from wine_quality.pipeline import deploy_production

        return deploy_production(promotion=promotion, settings=_settings())

    @task(task_display_name="Canary the endpoint")
    @fail_fast
    def canary(
        promotion: dict[str, Any],
        candidate: dict[str, Any],
        deployed: dict[str, Any],
        **context: Any,
    ) -> dict[str, Any]:
        from wine_quality.pipeline import canary_check

        params = context["params"]
        return canary_check(
            promotion=promotion,
            candidate=candidate,
            settings=_settings(),
            sample_rows=params["canary_rows"],
            p95_budget_ms=params["canary_p95_ms"],
        )

    @task(task_display_name="Roll back production", trigger_rule=TriggerRule.ONE_FAILED)
    def rollback(**context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from wine_quality.pipeline import rollback_production

        # ONE_FAILED also fires on upstream_failed; only a promotion that happened is undone.
        promotion = context["ti"].xcom_pull(task_ids="promote")
        if not promotion:
            raise AirflowSkipException("nothing was promoted in this run: nothing to roll back")
        reason = f"deploy or canary failed in run {context['run_id']}"
        return rollback_production(
            version=promotion["version"], settings=_settings(), reason=reason
        )

    @task(task_display_name="Summary", trigger_rule=TriggerRule.ALL_DONE)
    def report(**context: Any) -> dict[str, Any]:
        import json
        import os

        from wine_quality.pipeline import report_run

        ti = context["ti"]
        names = (
            "ingest",
            "validate",
            "train",
            "evaluate",
            "promote",
            "deploy",
            "canary",
            "rollback",
        )
        results = {name: ti.xcom_pull(task_ids=name) for name in names}
        summary = report_run(results=results, settings=_settings())
        summary["run_id"] = context["run_id"]
        text = json.dumps(summary, indent=2)
        print(text)
        if path := os.environ.get("WINE_RUN_SUMMARY_FILE"):
            with open(path, "w") as handle:
                handle.write(text)
        return summary

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def watcher() -> None:
        """Fail the run when any task failed (the summary and rollback tasks would hide it)."""
        raise AirflowFailException("a task of this run failed: see the failed task's log")

    ingested = ingest()
    validated = validate(ingested)
    candidate = train(ingested, validated)
    decision = evaluate(candidate)
    gate = should_promote(decision)
    promotion = promote(decision)
    gate >> promotion
    deployed = deploy(promotion)
    canaried = canary(promotion, candidate, deployed)
    rolled_back = rollback()
    [deployed, canaried] >> rolled_back
    summary = report()
    watched = watcher()
    # Not downstream of the gate: a short-circuit skips every direct downstream task.
    work = [ingested, validated, candidate, decision, promotion, deployed, canaried, rolled_back]
    work >> summary
    work >> watched


wine_retraining()
