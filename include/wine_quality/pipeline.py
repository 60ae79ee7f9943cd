"""One function per DAG task: explicit arguments in, a small JSON-able dict out.

These compose the lower modules (data, validation, training, evaluation, registry, deployment,
canary) so the DAG file only wires them, and so the whole flow can be run and tested without
Airflow. Frames and models travel through storage and MLflow; only references and metrics are
returned.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wine_quality import __version__, config
from wine_quality.config import Settings

log = logging.getLogger(__name__)


def ingest_data(
    *, data_uri: str | None, settings: Settings, snapshot_key: str, s3_client: Any | None = None
) -> dict[str, Any]:
    """Snapshot the configured source for this run and return its identity (sha256, rows).

    ``s3_client`` (from the orchestrator's S3 connection) is used for ``s3://`` URIs.
    """
    from wine_quality.data import ingest

    result = ingest(
        data_uri or settings.data_uri, settings.staging_uri, snapshot_key, s3_client=s3_client
    )
    log.info(
        "ingested %s rows (sha256 %s) from %s into %s%s",
        result.rows,
        result.sha256,
        result.source_uri,
        result.snapshot_uri,
        " (reused snapshot)" if result.reused else "",
    )
    return result.to_dict()


def validate_data(
    *,
    ingested: dict[str, Any],
    settings: Settings,
    airflow_run_id: str,
    min_rows: int,
    s3_client: Any | None = None,
) -> dict[str, Any]:
    """Run the expectation suite on the snapshot; keep the full result in MLflow either way.

    Raises:
        DataValidationError: Any expectation failed (after the result is stored).
    """
    import mlflow

    from wine_quality.data import load_snapshot
    from wine_quality.tracking import client, ensure_experiment
    from wine_quality.validation import validate_frame

    frame = load_snapshot(ingested["snapshot_uri"], ingested["sha256"], s3_client=s3_client)
    report = validate_frame(frame, min_rows=min_rows)
    client(settings.tracking_uri)
    experiment_id = ensure_experiment(settings.tracking_uri, config.EXPERIMENT_NAME)
    tags = {
        "stage": "validate",
        "airflow_run_id": airflow_run_id,
        "data_sha256": ingested["sha256"],
        "validation": "passed" if report.success else "failed",
    }
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"validate {airflow_run_id}", tags=tags
    ) as run:
        mlflow.log_metrics(
            {"expectations": float(report.evaluated), "failed": float(len(report.failed))}
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "validation_result.json"
            path.write_text(report.to_json())
            mlflow.log_artifact(str(path), artifact_path="validation")
        if not report.success:
            mlflow.end_run(status="FAILED")
    log.info(
        "validation %s: %d expectations, %d failed (run %s)",
        tags["validation"],
        report.evaluated,
        len(report.failed),
        run.info.run_id,
    )
    report.raise_for_failure()
    return {
        "rows": len(frame),
        "expectations": report.evaluated,
        "sha256": ingested["sha256"],
        "validation_run_id": run.info.run_id,
    }


def train_candidate(
    *,
    ingested: dict[str, Any],
    settings: Settings,
    alphas: list[float],
    l1_ratios: list[float],
    dag_id: str,
    airflow_run_id: str,
    s3_client: Any | None = None,
) -> dict[str, Any]:
    """Train, log and register the candidate (idempotent per Airflow run)."""
    from wine_quality.data import load_snapshot
    from wine_quality.training import TrainingConfig, train_and_register

    frame = load_snapshot(ingested["snapshot_uri"], ingested["sha256"], s3_client=s3_client)
    candidate = train_and_register(
        tracking_uri=settings.tracking_uri,
        experiment_name=config.EXPERIMENT_NAME,
        frame=frame,
        data_sha256=ingested["sha256"],
        snapshot_uri=ingested["snapshot_uri"],
        dag_id=dag_id,
        airflow_run_id=airflow_run_id,
        cfg=TrainingConfig(
            alphas=tuple(float(a) for a in alphas), l1_ratios=tuple(float(r) for r in l1_ratios)
        ),
        code_version=__version__,
    )
    return candidate.to_dict()


def compare_candidate(
    *,
    candidate: dict[str, Any],
    settings: Settings,
    max_rmse: float,
    min_r2: float,
    min_improvement: float,
    force: bool,
    airflow_run_id: str,
) -> dict[str, Any]:
    """Score candidate and production on the same holdout and decide (see ``decide``)."""
    from wine_quality.evaluation import PromotionPolicy, compare_with_production

    decision = compare_with_production(
        tracking_uri=settings.tracking_uri,
        experiment_name=config.EXPERIMENT_NAME,
        candidate=candidate,
        policy=PromotionPolicy(
            max_rmse=float(max_rmse),
            min_r2=float(min_r2),
            min_improvement=float(min_improvement),
            force=bool(force),
        ),
        airflow_run_id=airflow_run_id,
    )
    return decision.to_dict()


def promotion_wanted(decision: Mapping[str, Any]) -> bool:
    """Whether the run goes on to promotion; says which way and why in the log."""
    promote = bool(decision["promote"])
    log.info(
        "%s: %s",
        "going on to promotion" if promote else "production is kept; promotion is skipped",
        "; ".join(decision["reasons"]),
    )
    return promote


def promote_candidate(
    *, decision: dict[str, Any], settings: Settings, airflow_run_id: str
) -> dict[str, Any]:
    """Move ``production`` to the candidate unless another run moved it since the comparison."""
    from wine_quality.registry import promote

    return promote(
        tracking_uri=settings.tracking_uri,
        version=decision["candidate_version"],
        expected_production=decision["production_version"],
        airflow_run_id=airflow_run_id,
        forced=bool(decision.get("forced")),
    )


def deploy_production(*, promotion: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Make the model server load the promoted version and wait until it serves it."""
    from wine_quality.deployment import deploy

    return deploy(
        server_url=settings.model_server_url,
        token=settings.model_server_token,
        expected_version=promotion["version"],
    )


def canary_check(
    *,
    promotion: dict[str, Any],
    candidate: dict[str, Any],
    settings: Settings,
    sample_rows: int,
    p95_budget_ms: float,
) -> dict[str, Any]:
    """Check the live endpoint against the offline model (raises ``CanaryError`` on failure)."""
    from wine_quality.canary import run_canary

    report = run_canary(
        tracking_uri=settings.tracking_uri,
        server_url=settings.model_server_url,
        version=promotion["version"],
        holdout_uri=candidate["holdout_uri"],
        sample_rows=sample_rows,
        p95_budget_ms=p95_budget_ms,
        seed=config.SEED,
    )
    log.info("canary passed: %s", report.to_dict())
    return report.to_dict()


def rollback_production(*, version: str, settings: Settings, reason: str) -> dict[str, Any]:
    """Restore ``previous_production`` if the candidate is production, then redeploy.

    The registry is the source of truth: if the model server is down it loads production when
    it comes back, so a failed redeploy is reported but does not undo the rollback.
    """
    from wine_quality.deployment import deploy
    from wine_quality.registry import rollback

    outcome = rollback(tracking_uri=settings.tracking_uri, failed_version=version, reason=reason)
    try:
        served = deploy(
            server_url=settings.model_server_url,
            token=settings.model_server_token,
            expected_version=outcome["production"],
            wait_seconds=60,
        )
        outcome["served_version"] = served.get("version")
    except Exception as exc:  # noqa: BLE001 - reported; the registry already holds the truth
        log.warning("model server not redeployed after rollback: %s", exc)
        outcome["served_version"] = None
        outcome["redeploy_error"] = str(exc)[:300]
    return outcome


# The steps a summary reports on, in the order they run (the DAG's task ids).
STEPS: tuple[str, ...] = (
    "ingest", "validate", "train", "evaluate", "promote", "deploy", "canary", "rollback",
)  # fmt: skip


def step_status(state: str | None) -> str:
    """What a step's final task state means to a person: passed, failed or not run.

    A skipped step (nothing to promote, nothing to roll back) and one whose upstream failed
    both did not run; only a step that ran and raised failed.
    """
    if state == "success":
        return "passed"
    if state == "failed":
        return "failed"
    return "not run"


def summarize(
    results: Mapping[str, Any], states: Mapping[str, str | None], *, airflow_run_id: str
) -> dict[str, Any]:
    """Fold the steps' outputs and final states into the run summary people read.

    Args:
        results: Each step's return value, None when it returned nothing.
        states: Each step's final task state (``success``, ``failed``, ``skipped``,
            ``upstream_failed``; missing or None when it never ran).
        airflow_run_id: The orchestrator's id of this run.
    """
    from wine_quality.evaluation import outcome

    steps = {name: step_status(states.get(name)) for name in STEPS}
    ingested = results.get("ingest") or {}
    candidate = results.get("train") or {}
    decision = results.get("evaluate") or {}
    promotion = results.get("promote") or {}
    deployed = results.get("deploy") or {}
    canary = results.get("canary")
    rollback = results.get("rollback")
    return {
        "airflow_run_id": airflow_run_id,
        "decision": (
            outcome(bool(decision.get("promote")), bool(decision.get("forced")))
            if decision
            else "not made"
        ),
        "reasons": decision.get("reasons"),
        "rows": ingested.get("rows"),
        "data_sha256": ingested.get("sha256"),
        "validation": steps["validate"],
        "candidate_version": candidate.get("version"),
        "candidate_metrics": decision.get("candidate_metrics"),
        "production_version_before": decision.get("production_version"),
        "production_metrics": decision.get("production_metrics"),
        "promoted_version": promotion.get("version"),
        "served_version": deployed.get("version") or (rollback or {}).get("served_version"),
        "canary": (
            {"passed": True, "p95_ms": canary.get("p95_ms"), "rows": canary.get("rows")}
            if steps["canary"] == "passed" and canary
            else steps["canary"]
        ),
        "rollback": rollback if steps["rollback"] == "passed" and rollback else steps["rollback"],
        "steps": steps,
    }


def report_run(
    *,
    results: Mapping[str, Any],
    states: Mapping[str, str | None],
    airflow_run_id: str,
    settings: Settings,
) -> dict[str, Any]:
    """The run summary, with what the endpoint serves right now (asked, not assumed)."""
    from wine_quality.deployment import served_model

    summary = summarize(results, states, airflow_run_id=airflow_run_id)
    try:
        summary["served_version"] = served_model(settings.model_server_url).get("version")
    except Exception as exc:  # noqa: BLE001 - a summary must not fail on an unreachable server
        summary["served_version"] = f"unknown: model server unreachable ({type(exc).__name__})"
    return summary
