"""
# wine_retraining

Nightly retraining of `ElasticNetWineModel` (UCI red wine quality), promoted only when it is
better than production on the same holdout, and only kept if the deployed endpoint proves it.

- **Data**: `ingest` snapshots the source (sha256, rows), `validate` runs the Great
  Expectations suite.
- **Model**: `train` trains and registers a candidate in MLflow, `evaluate` scores it and
  production on the same holdout and decides.
- **Release**: `should_promote` stops here unless the candidate is better; `approve` asks a
  person when the run's `approval` setting says so (always, or when the data drifted); `promote`
  moves the `production` alias, `deploy` makes the model server load it, `canary` checks the live
  endpoint; if `deploy` or `canary` fails, `rollback` restores `previous_production`.

It runs every night at 02:00 UTC and whenever the data asset is updated (an asset event, whose
extra may name the new file as `data_uri`).

`Summary` always runs last and shows the decision, its reasons and each step's outcome
(`passed`, `failed` or `not run`). `Fail the run if a task failed` makes the run fail whenever
any task failed, even though the summary and the rollback succeed.

A candidate that is not better ends the run as a **success**: promotion, deployment and the
canary are skipped, and the decision with its reasons is at the top of the `evaluate` task's
log, in the summary and on the model version's tags. So does a rejected promotion (answer
**Reject** under **Required Actions**, or no answer in time): "rejected by ..." is in the
summary, the run's note and on the version's tags. Deterministic failures (bad data, a failed
canary, a promotion race, an unknown run setting) fail at once; network errors are retried with
back-off.

To change the data source, thresholds, grid or to force a promotion (recorded as forced),
click **Trigger** and fill in the form; a key that is not in the form fails the run at once.
The tasks with an MLflow run or model version link to it under **Extra Links**. Where MLflow and
the model server are comes from the environment (`MLFLOW_TRACKING_URI`,
`WINE_MODEL_SERVER_URL`). All logic lives in `include/wine_quality`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    TaskGroup,
    TriggerRule,
    XComArg,
    dag,
    task,
)
from airflow.sdk.exceptions import AirflowFailException

# Light at parse time: the plugins (plugins/ is on Airflow's sys.path) import only Airflow and
# the config module, and the config module (the Params' defaults) and data_source only the
# standard library.
from mlflow_links import MlflowModelVersionLink, MlflowRunLink
from promotion_approval import PromotionApproval
from release_scope import ReleaseGate

from wine_quality.core import config
from wine_quality.data.source import data_asset_uri

F = TypeVar("F", bound=Callable[..., Any])

RUN_LINK = MlflowRunLink()
VERSION_LINK = MlflowModelVersionLink()
# The incoming data: an update of it (an asset event) starts a run. Where it is comes from the
# environment (WINE_DATA_ASSET_URI, else WINE_DATA_URI), the one thing read at parse time.
DATA_ASSET = Asset(name=config.DATA_ASSET_NAME, uri=data_asset_uri(os.environ))


def pipeline_step(func: F) -> F:
    """Run a task body the package's way.

    MLflow's log lines go through Python logging, so Airflow shows their real level (MLflow
    otherwise writes them to stderr, which Airflow shows as ERROR); this holds whoever runs the
    task (``dags test``, a scheduler's task runner, a Celery worker). The package's
    deterministic errors become an immediate failure (no retries).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from wine_quality.core.logs import use_host_logging

        use_host_logging()
        from wine_quality.core.errors import PipelineGateError

        try:
            return func(*args, **kwargs)
        except PipelineGateError as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


def linked(output: XComArg, *links: Any) -> XComArg:
    """Give the task behind ``output`` its own Extra Links (TaskFlow has no argument for it)."""
    output.operator.operator_extra_links = links  # type: ignore[attr-defined]
    return output


def _settings():
    from wine_quality.core.config import Settings

    return Settings.from_env()


def _s3_client(conn_id: str, *uris: str | None):
    """A boto3 client from the Airflow S3 connection, only when some URI is in S3."""
    if not any(uri and uri.startswith("s3://") for uri in uris):
        return None
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).get_conn()


@dag(
    dag_id=config.DAG_ID,
    # The nightly run (a cron trigger: the run's logical date is 02:00 itself) or new data.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(config.NIGHTLY_CRON, timezone=config.SCHEDULE_TIMEZONE),
        assets=DATA_ASSET,
    ),
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
            description="Local path, s3:// or https:// URI of the red wine CSV. Empty: the "
            "data_uri named by the asset event that started the run, else the WINE_DATA_URI "
            "environment variable, else the public UCI file.",
        ),
        "min_improvement": Param(
            config.DEFAULT_MIN_IMPROVEMENT,
            type="number",
            exclusiveMinimum=0,
            title="Improvement margin",
            description="The candidate's holdout RMSE must be lower than production's on the "
            "same rows by at least this much across the whole confidence interval, or "
            "production is kept.",
        ),
        "ci_level": Param(
            config.DEFAULT_CI_LEVEL,
            type="number",
            exclusiveMinimum=0,
            exclusiveMaximum=1,
            title="Confidence level of the gate",
            description="The candidate is promoted only when this interval of its RMSE minus "
            "production's (paired bootstrap on the holdout) lies entirely below minus the "
            "margin: better beyond the noise, not just on average.",
        ),
        "bootstrap_resamples": Param(
            config.DEFAULT_BOOTSTRAP_RESAMPLES,
            type="integer",
            minimum=100,
            maximum=100_000,
            title="Bootstrap resamples",
            description="Paired resamples of the holdout drawn for that interval (seeded, so "
            "the same data gives the same interval).",
        ),
        "drift_psi": Param(
            config.DEFAULT_DRIFT_PSI,
            type="number",
            exclusiveMinimum=0,
            title="Drift threshold: PSI",
            description="A column whose population stability index against production's "
            "training data is at least this has drifted. Drift is reported, not refused.",
        ),
        "drift_ks": Param(
            config.DEFAULT_DRIFT_KS,
            type="number",
            exclusiveMinimum=0,
            maximum=1,
            title="Drift threshold: KS statistic",
            description="A column whose two-sample Kolmogorov-Smirnov statistic against "
            "production's training data is at least this has drifted.",
        ),
        "max_rmse": Param(
            config.DEFAULT_MAX_RMSE,
            type="number",
            exclusiveMinimum=0,
            title="Maximum holdout RMSE",
            description="A candidate whose RMSE on the holdout is above this is never promoted.",
        ),
        "min_r2": Param(
            config.DEFAULT_MIN_R2,
            type="number",
            maximum=1,
            title="Minimum holdout R²",
            description="A candidate whose R² on the holdout is below this is never promoted.",
        ),
        "alphas": Param(
            list(config.DEFAULT_ALPHAS),
            type="array",
            items={"type": "number", "exclusiveMinimum": 0},
            minItems=1,
            title="Grid: alpha values",
            description="Regularisation strengths tried by the cross-validated grid search.",
        ),
        "l1_ratios": Param(
            list(config.DEFAULT_L1_RATIOS),
            type="array",
            items={"type": "number", "minimum": 0, "maximum": 1},
            minItems=1,
            title="Grid: l1_ratio values",
            description="Mixes of L1 and L2 penalty tried by the grid search "
            "(0 = ridge, 1 = lasso).",
        ),
        "min_rows": Param(
            config.MIN_ROWS,
            type="integer",
            minimum=1,
            title="Minimum rows in the data",
            description="Validation fails when the data has fewer rows than this.",
        ),
        "canary_rows": Param(
            config.DEFAULT_CANARY_ROWS,
            type="integer",
            minimum=1,
            maximum=1000,
            title="Canary rows",
            description="Holdout rows sent to the live endpoint after a deployment and "
            "compared with the offline model's predictions.",
        ),
        "canary_p95_ms": Param(
            config.DEFAULT_CANARY_P95_MS,
            type="number",
            exclusiveMinimum=0,
            title="Canary p95 latency budget (ms)",
            description="The canary fails, and production is rolled back, when the endpoint's "
            "95th percentile latency is above this.",
        ),
        "force_promotion": Param(
            False,
            type="boolean",
            title="Force promotion (emergency)",
            description="Promote even if the candidate is not better. Recorded as forced.",
        ),
        "approval": Param(
            config.DEFAULT_APPROVAL,
            type="string",
            enum=list(config.APPROVAL_MODES),
            title="Human approval before promotion",
            description="always: a person must approve every promotion (Required Actions); "
            "on_drift: only when the evaluation found the data drifted (except in a run of "
            "airflow dags test, such as make run, which never waits for it); never: promote "
            "without asking.",
        ),
        "approval_timeout_minutes": Param(
            config.DEFAULT_APPROVAL_TIMEOUT_MINUTES,
            type="number",
            exclusiveMinimum=0,
            title="Approval timeout (minutes)",
            description="How long the approval waits for an answer; no answer by then counts "
            "as a rejection and production is kept.",
        ),
    },
)
def wine_retraining() -> None:
    @task(task_display_name="Ingest raw data")
    @pipeline_step
    def ingest(**context: Any) -> dict[str, Any]:
        from wine_quality.core.handoff import to_xcom
        from wine_quality.data.ingest import ingest
        from wine_quality.data.source import choose_data_uri

        # First, before any work: a misspelt setting would otherwise be ignored silently. Here
        # rather than in a task of its own, which would cost a worker slot and a graph node.
        config.check_conf_keys(context["dag_run"].conf, context["dag"].params.keys())
        settings = _settings()
        source = choose_data_uri(
            context["params"]["data_uri"],
            [(event.timestamp, event.extra) for event in context["dag_run"].consumed_asset_events],
            settings.data_uri,
        )
        logical_date = context.get("logical_date")
        return to_xcom(
            ingest(
                source.uri,
                settings.staging_uri,
                logical_date.isoformat() if logical_date else context["run_id"],
                s3_client=_s3_client(settings.s3_conn_id, source.uri, settings.staging_uri),
            )
        )

    @task(task_display_name="Validate data (GX)")
    @pipeline_step
    def validate(ingested: dict[str, Any], **context: Any) -> dict[str, Any]:
        from wine_quality.core.handoff import from_xcom, to_xcom
        from wine_quality.data.ingest import IngestResult
        from wine_quality.validation.run import validate_snapshot

        settings = _settings()
        return to_xcom(
            validate_snapshot(
                from_xcom(IngestResult, ingested),
                tracking_uri=settings.tracking_uri,
                experiment_name=config.EXPERIMENT_NAME,
                airflow_run_id=context["run_id"],
                min_rows=context["params"]["min_rows"],
                s3_client=_s3_client(settings.s3_conn_id, ingested["snapshot_uri"]),
            )
        )

    @task(task_display_name="Train and register candidate")
    @pipeline_step
    def train(ingested: dict[str, Any], validated: dict[str, Any], **context: Any) -> dict:
        from wine_quality.core.handoff import from_xcom, to_xcom
        from wine_quality.data.ingest import IngestResult
        from wine_quality.model.train import train_from_snapshot

        settings = _settings()
        return to_xcom(
            train_from_snapshot(
                from_xcom(IngestResult, ingested),
                tracking_uri=settings.tracking_uri,
                experiment_name=config.EXPERIMENT_NAME,
                alphas=context["params"]["alphas"],
                l1_ratios=context["params"]["l1_ratios"],
                dag_id=context["dag"].dag_id,
                airflow_run_id=context["run_id"],
                s3_client=_s3_client(settings.s3_conn_id, ingested["snapshot_uri"]),
            )
        )

    @task(task_display_name="Compare with production")
    @pipeline_step
    def evaluate(candidate: dict[str, Any], **context: Any) -> dict[str, Any]:
        from wine_quality.core.handoff import from_xcom, to_xcom
        from wine_quality.gate.evaluate import PromotionPolicy, compare_with_production
        from wine_quality.model.train import Candidate

        settings, params = _settings(), context["params"]
        return to_xcom(
            compare_with_production(
                tracking_uri=settings.tracking_uri,
                experiment_name=config.EXPERIMENT_NAME,
                candidate=from_xcom(Candidate, candidate),
                policy=PromotionPolicy(
                    max_rmse=params["max_rmse"],
                    min_r2=params["min_r2"],
                    min_improvement=params["min_improvement"],
                    force=params["force_promotion"],
                    ci_level=params["ci_level"],
                    bootstrap_resamples=params["bootstrap_resamples"],
                    drift_psi=params["drift_psi"],
                    drift_ks=params["drift_ks"],
                ),
                airflow_run_id=context["run_id"],
                # Production's training snapshot is in the same staging area as this one.
                s3_client=_s3_client(settings.s3_conn_id, candidate.get("snapshot_uri")),
            )
        )

    @pipeline_step
    def should_promote(decision: dict[str, Any]) -> bool:
        from wine_quality.core.handoff import from_xcom
        from wine_quality.gate.evaluate import Decision, promotion_wanted

        return promotion_wanted(from_xcom(Decision, decision))

    @task(task_display_name="Promote to production")
    @pipeline_step
    def promote(decision: dict[str, Any], **context: Any) -> dict[str, Any]:
        from wine_quality.core.handoff import from_xcom, to_xcom
        from wine_quality.gate.evaluate import Decision
        from wine_quality.release.registry import promote

        compared = from_xcom(Decision, decision)
        return to_xcom(
            promote(
                tracking_uri=_settings().tracking_uri,
                version=compared.candidate_version,
                expected_production=compared.production_version,
                airflow_run_id=context["run_id"],
                forced=compared.forced,
            )
        )

    @task(task_display_name="Deploy to model server")
    @pipeline_step
    def deploy(promotion: dict[str, Any]) -> dict[str, Any]:
        from wine_quality.core.handoff import from_xcom, to_xcom
        from wine_quality.release.deploy import deploy
        from wine_quality.release.registry import Promotion

        settings = _settings()
        return to_xcom(
            deploy(
                server_url=settings.model_server_url,
                token=settings.model_server_token,
                expected_version=from_xcom(Promotion, promotion).version,
            )
        )

    @task(task_display_name="Canary the endpoint")
    @pipeline_step
    def canary(
        promotion: dict[str, Any],
        candidate: dict[str, Any],
        deployed: dict[str, Any],
        **context: Any,
    ) -> dict[str, Any]:
        from wine_quality.core.handoff import from_xcom, to_xcom
        from wine_quality.model.train import Candidate
        from wine_quality.release.canary import run_canary
        from wine_quality.release.registry import Promotion

        settings, params = _settings(), context["params"]
        return to_xcom(
            run_canary(
                tracking_uri=settings.tracking_uri,
                server_url=settings.model_server_url,
                version=from_xcom(Promotion, promotion).version,
                holdout_uri=from_xcom(Candidate, candidate).holdout_uri,
                sample_rows=params["canary_rows"],
                p95_budget_ms=params["canary_p95_ms"],
            )
        )

    # ALL_DONE, deciding for itself: with ONE_FAILED a release that passed left `rollback` to be
    # skipped by a scheduling pass of its own before the summary could start (a second's sleep
    # per run under `airflow dags test`). It runs once deploy and canary are done.
    @task(task_display_name="Roll back production", trigger_rule=TriggerRule.ALL_DONE)
    @pipeline_step
    def rollback(**context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from wine_quality.core.handoff import from_xcom, to_xcom
        from wine_quality.release.deploy import rollback_and_redeploy
        from wine_quality.release.registry import Promotion

        ti, run_id = context["ti"], context["run_id"]
        promotion = ti.xcom_pull(task_ids="promote")
        if not promotion:  # Only a promotion that happened is undone.
            raise AirflowSkipException("nothing was promoted in this run: nothing to roll back")
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
        if all(states.get(step) == "success" for step in ("deploy", "canary")):
            raise AirflowSkipException("deploy and canary passed: nothing to roll back")
        settings = _settings()
        return to_xcom(
            rollback_and_redeploy(
                tracking_uri=settings.tracking_uri,
                server_url=settings.model_server_url,
                token=settings.model_server_token,
                failed_version=from_xcom(Promotion, promotion).version,
                reason=f"deploy or canary failed in run {context['run_id']}",
            )
        )

    @task(task_display_name="Summary", trigger_rule=TriggerRule.ALL_DONE)
    @pipeline_step
    def report(**context: Any) -> dict[str, Any]:
        from wine_quality.report.summary import STEPS, StepResults, report_run

        ti, run_id = context["ti"], context["run_id"]
        settings = _settings()
        return report_run(
            StepResults.from_xcom({name: ti.xcom_pull(task_ids=name) for name in STEPS}),
            ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {}),
            airflow_run_id=run_id,
            server_url=settings.model_server_url,
            tracking_uri=settings.tracking_uri,
            summary_file=settings.run_summary_file,
            note_for_dag=ti.dag_id,
        )

    @task(
        task_display_name="Fail the run if a task failed",
        trigger_rule=TriggerRule.ONE_FAILED,
        retries=0,
    )
    def watcher() -> None:
        """Fail the run when any task failed (the summary and rollback tasks would hide it)."""
        raise AirflowFailException("a task of this run failed: see the failed task's log")

    # Task ids stay unprefixed (prefix_group_id=False): the groups only draw the graph.
    with TaskGroup("data", group_display_name="Data", prefix_group_id=False):
        ingested = ingest()
        validated = linked(validate(ingested), RUN_LINK)
    with TaskGroup("model", group_display_name="Model", prefix_group_id=False):
        candidate = linked(train(ingested, validated), RUN_LINK, VERSION_LINK)
        decision = linked(evaluate(candidate), VERSION_LINK)
    with TaskGroup("release", group_display_name="Release", prefix_group_id=False):
        # Not better: the gate skips the rest of the release at once (not the summary).
        gate = ReleaseGate(
            task_id="should_promote",
            task_display_name="Better than production?",
            python_callable=should_promote,
            op_args=[decision],
        )
        # Rejected (or unanswered in time), it skips promote, deploy, canary and rollback.
        approval = PromotionApproval(
            task_id="approve", task_display_name="Human approval", decision=decision
        )
        promotion = linked(promote(decision), VERSION_LINK)
        gate >> approval >> promotion
        deployed = linked(deploy(promotion), RUN_LINK, VERSION_LINK)
        canaried = linked(canary(promotion, candidate, deployed), VERSION_LINK)
        rolled_back = linked(rollback(), VERSION_LINK)
        [deployed, canaried] >> rolled_back
    summary = linked(report(), VERSION_LINK)
    watched = watcher()
    # Every other task is upstream of `rollback`, and `rollback` (ALL_DONE) is done only once
    # `deploy` and `canary` are: so the summary, after `rollback`, runs last. A failure anywhere
    # on the main line reaches `canary` as failed or upstream_failed (all its ancestors are
    # ALL_SUCCESS), and `rollback` covers itself: so the watcher needs only those two. Neither
    # is in the release group, whose tasks the gate and a rejection skip.
    rolled_back >> summary
    [canaried, rolled_back] >> watched


wine_retraining()
