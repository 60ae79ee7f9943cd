"""Compare the candidate with production on the same holdout, and decide whether to promote.

Both models are scored in this run on the candidate's holdout rows, with
``mlflow.models.evaluate``; stale metrics from an older run are never reused. The rule itself is
:func:`decide`, a pure function built on MLflow's ``MetricThreshold`` validator.

Traps of MLflow's validator, handled here: ``min_absolute_change`` needs a baseline result (so
the first model is judged on absolute thresholds only), and every threshold must be a plain
Python ``float`` (numpy scalars and ints from JSON are refused), so values are cast explicitly.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wine_quality import config
from wine_quality.config import MODEL_NAME, PRODUCTION_ALIAS, TARGET
from wine_quality.registry import alias_version
from wine_quality.tracking import ensure_experiment, using
from wine_quality.training import Candidate, holdout_digest, load_holdout

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# MLflow's regressor evaluator names -> the short names used in tags, XCom and the summary.
METRIC_NAMES = {"root_mean_squared_error": "rmse", "mean_absolute_error": "mae", "r2_score": "r2"}


@dataclass(frozen=True)
class PromotionPolicy:
    """When a candidate may replace production (the DAG's Params)."""

    max_rmse: float
    min_r2: float
    min_improvement: float
    force: bool = False

    def __post_init__(self) -> None:
        # Plain Python numbers: MLflow's validator refuses numpy scalars and ints, and the policy
        # is written into the decision's JSON artifact.
        for name in ("max_rmse", "min_r2", "min_improvement"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "force", bool(self.force))


@dataclass(frozen=True)
class Decision:
    """The outcome of a comparison, with everything needed to audit it later."""

    promote: bool
    reasons: list[str]
    candidate_version: str
    candidate_metrics: dict[str, float]
    production_version: str | None
    production_metrics: dict[str, float] | None
    holdout_digest: str
    holdout_rows: int
    policy: dict[str, Any] = field(default_factory=dict)
    forced: bool = False


def decide(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    policy: PromotionPolicy,
) -> tuple[bool, list[str], bool]:
    """Apply the promotion rule.

    Promote when the absolute thresholds hold (RMSE <= max, R² >= min) and either there is no
    production model or the candidate's RMSE beats production's by at least the margin. A forced
    promotion skips the rule but is reported as forced.

    Args:
        candidate: Candidate metrics (``rmse``, ``r2``, ...) on the holdout.
        production: Production's metrics on the same holdout, or None if there is none.
        policy: Thresholds and margin.

    Returns:
        ``(promote, reasons, forced)``: every reason, passing or failing, in plain words.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation import EvaluationResult

    def result(metrics: dict[str, float]) -> EvaluationResult:
        return EvaluationResult(
            metrics={
                "root_mean_squared_error": float(metrics["rmse"]),
                "r2_score": float(metrics["r2"]),
            },
            artifacts={},
        )

    rmse, r2 = candidate["rmse"], candidate["r2"]
    # Each check: thresholds for MLflow's validator, whether it needs production as baseline,
    # and the sentence that says what held or what failed.
    checks: list[tuple[dict[str, Any], bool, str, str]] = [
        (
            {
                "root_mean_squared_error": MetricThreshold(
                    threshold=float(policy.max_rmse), greater_is_better=False
                )
            },
            False,
            f"RMSE {rmse:.4f} is at most the maximum of {policy.max_rmse:g}",
            f"RMSE {rmse:.4f} is above the maximum of {policy.max_rmse:g}",
        ),
        (
            {"r2_score": MetricThreshold(threshold=float(policy.min_r2), greater_is_better=True)},
            False,
            f"R² {r2:.4f} is at least the minimum of {policy.min_r2:g}",
            f"R² {r2:.4f} is below the minimum of {policy.min_r2:g}",
        ),
    ]
    if production is not None:
        margin, prod_rmse = policy.min_improvement, production["rmse"]
        checks.append(
            (
                {
                    "root_mean_squared_error": MetricThreshold(
                        min_absolute_change=float(margin), greater_is_better=False
                    )
                },
                True,
                f"RMSE {rmse:.4f} is at least {margin:g} below production's {prod_rmse:.4f}",
                f"RMSE {rmse:.4f} is not at least {margin:g} below production's {prod_rmse:.4f}",
            )
        )
    reasons: list[str] = []
    passed_all = True
    for thresholds, needs_baseline, held, failed in checks:
        try:
            from mlflow import validate_evaluation_results

            validate_evaluation_results(
                thresholds,
                result(candidate),
                result(production) if needs_baseline and production is not None else None,
            )
            reasons.append(held)
        except MlflowException as exc:
            if type(exc).__name__ != "ModelValidationFailedException":
                raise
            passed_all = False
            reasons.append(failed)
    if production is None:
        reasons.append("there is no production version yet, so the thresholds alone decide")
    if policy.force:
        reasons.append("promotion was forced, overriding the rule's verdict")
        return True, reasons, True
    return passed_all, reasons, False


def outcome(promote: bool, forced: bool) -> str:
    """The decision in one word or two, as tagged on the version and shown in the summary."""
    return "forced" if forced else ("promote" if promote else "keep production")


def explain(decision: Decision) -> str:
    """The decision and every reason, as a few lines a person reads at the top of a log."""
    production = (
        f"production version {decision.production_version}"
        if decision.production_version
        else "no production version"
    )
    verdict = {
        "forced": "promote it (forced)",
        "promote": "promote it",
        "keep production": "keep production",
    }[outcome(decision.promote, decision.forced)]
    lines = [f"Decision: {verdict}. Candidate version {decision.candidate_version} vs {production}"]
    lines += [f"  - {reason}" for reason in decision.reasons]
    return "\n".join(lines)


def score_on_holdout(
    model_uri: str, holdout: pd.DataFrame, *, experiment_id: str, tags: dict[str, str]
) -> dict[str, float]:
    """Evaluate ``model_uri`` on ``holdout`` in its own MLflow run and return RMSE/MAE/R².

    Runs inside the caller's :func:`wine_quality.tracking.using` block (the fluent API).
    """
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate {model_uri}", tags=tags):
        result = mlflow.models.evaluate(
            model=model_uri,
            # All float: MLflow otherwise warns, per model, that integer columns cannot hold
            # missing values (they cannot be missing here: validation refused them).
            data=holdout.astype("float64"),
            targets=TARGET,
            model_type="regressor",
            evaluators=["default"],
            # No SHAP plots (SHAP is not a dependency): without this MLflow warns every time.
            evaluator_config={"default": {"log_model_explainability": False}},
        )
    return {short: float(result.metrics[name]) for name, short in METRIC_NAMES.items()}


def compare_with_production(
    *,
    tracking_uri: str,
    experiment_name: str,
    candidate: Candidate,
    policy: PromotionPolicy,
    airflow_run_id: str,
) -> Decision:
    """Score candidate and production on the candidate's holdout and decide.

    The decision and its reasons are written to the candidate version's tags and as a JSON
    artifact on the candidate's training run.

    Args:
        tracking_uri: MLflow tracking server.
        experiment_name: Experiment for the evaluation runs.
        candidate: The registered candidate.
        policy: Thresholds, margin and the force flag.
        airflow_run_id: Tag for the evaluation runs.
    """
    with using(tracking_uri) as mlflow_client:
        experiment_id = ensure_experiment(mlflow_client, experiment_name)
        holdout = load_holdout(candidate.holdout_uri, tracking_uri)
        digest = holdout_digest(holdout)
        if digest != candidate.holdout_digest:
            raise RuntimeError(
                f"holdout digest {digest} differs from the one recorded at training"
                f" ({candidate.holdout_digest}): refusing to compare on different rows"
            )
        tags = {"stage": "evaluate", "airflow_run_id": airflow_run_id, "holdout_digest": digest}
        candidate_metrics = score_on_holdout(
            candidate.model_uri,
            holdout,
            experiment_id=experiment_id,
            tags={**tags, "model_version": candidate.version, "role": "candidate"},
        )
        prod_version = alias_version(mlflow_client, PRODUCTION_ALIAS)
        prod_metrics = None
        if prod_version is not None:
            prod_metrics = score_on_holdout(
                config.model_uri(prod_version),
                holdout,
                experiment_id=experiment_id,
                tags={**tags, "model_version": prod_version, "role": "production"},
            )
    promote, reasons, forced = decide(candidate_metrics, prod_metrics, policy)
    decision = Decision(
        promote=promote,
        reasons=reasons,
        candidate_version=str(candidate.version),
        candidate_metrics=candidate_metrics,
        production_version=prod_version,
        production_metrics=prod_metrics,
        holdout_digest=digest,
        holdout_rows=len(holdout),
        policy=asdict(policy),
        forced=forced,
    )
    # Logged as soon as it is made: it is what a person opens this task's log for.
    log.info("%s", explain(decision))
    version = str(candidate.version)
    for key, value in {
        "decision": outcome(promote, forced).replace(" ", "_"),
        "decision_reasons": "; ".join(reasons)[:4900],
        "compared_with_version": prod_version or "none",
        "eval_holdout_digest": digest,
        "eval_rmse": f"{candidate_metrics['rmse']:.6f}",
        "eval_r2": f"{candidate_metrics['r2']:.6f}",
    }.items():
        mlflow_client.set_model_version_tag(MODEL_NAME, version, key, value)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"decision-v{version}.json"
        path.write_text(json.dumps(asdict(decision), indent=2))
        mlflow_client.log_artifact(candidate.run_id, str(path), artifact_path="decision")
    return decision


def promotion_wanted(decision: Decision) -> bool:
    """Whether the run goes on to promotion; says which way and why in the log."""
    log.info(
        "%s: %s",
        "going on to promotion" if decision.promote else "production is kept; promotion is skipped",
        "; ".join(decision.reasons),
    )
    return decision.promote
