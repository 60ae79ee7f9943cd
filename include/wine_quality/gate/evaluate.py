"""Compare the candidate with production on the same holdout, and decide whether to promote.

Both models are scored in this run on the candidate's holdout rows, minus any row production was
trained on (found through its lineage, :mod:`wine_quality.model.lineage`); stale metrics from
an older run are never reused. The candidate must be better beyond the noise of those rows: a paired
bootstrap interval of ΔRMSE (:mod:`wine_quality.gate.stats`) must lie below the margin. The new data
is compared with production's training data for drift (:mod:`wine_quality.gate.drift`), which is
reported, not refused. The rule itself is :func:`decide`, a pure function; its absolute
thresholds use MLflow's ``MetricThreshold`` validator, which needs plain Python floats.

Everything is recorded on the candidate: the decision JSON, metrics and plots on its training
run, tags and a model card (the description) on its version.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from wine_quality.core import config
from wine_quality.core.config import FEATURES, PRODUCTION_ALIAS, TARGET
from wine_quality.core.runtime import preload
from wine_quality.core.tracking import using
from wine_quality.data.holdout import (
    SPLIT_RULE,
    holdout_digest,
    in_holdout,
    load_holdout,
    row_groups,
)
from wine_quality.model.search import regression_metrics
from wine_quality.model.train import Candidate
from wine_quality.release.registry import alias_version

if TYPE_CHECKING:
    from wine_quality.gate.stats import DeltaInterval

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromotionPolicy:
    """When a candidate may replace production, and what counts as drift (the DAG's Params)."""

    max_rmse: float
    min_r2: float
    min_improvement: float
    force: bool = False
    ci_level: float = config.DEFAULT_CI_LEVEL
    bootstrap_resamples: int = config.DEFAULT_BOOTSTRAP_RESAMPLES
    drift_psi: float = config.DEFAULT_DRIFT_PSI
    drift_ks: float = config.DEFAULT_DRIFT_KS

    def __post_init__(self) -> None:
        # Plain Python numbers: MLflow's validator refuses numpy scalars and ints, and the policy
        # is written into the decision's JSON artifact.
        for name in ("max_rmse", "min_r2", "min_improvement", "ci_level", "drift_psi", "drift_ks"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "force", bool(self.force))
        object.__setattr__(self, "bootstrap_resamples", int(self.bootstrap_resamples))
        if not 0 < self.ci_level < 1:
            raise ValueError(f"ci_level must be between 0 and 1, got {self.ci_level}")


@dataclass(frozen=True)
class Decision:
    """The outcome of a comparison, with everything needed to audit it later.

    The interval fields are None when there is no production version to compare with; the
    drift fields are empty when production's training data could not be compared.
    """

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
    # ΔRMSE = candidate - production on the compared rows, and its paired bootstrap interval.
    delta_rmse: float | None = None
    delta_rmse_ci_low: float | None = None
    delta_rmse_ci_high: float | None = None
    ci_level: float | None = None
    bootstrap_resamples: int | None = None
    # Rows compared (the holdout minus rows production was trained on) and how many were left out.
    compared_rows: int = 0
    holdout_overlap_rows: int = 0
    split_rule: str = ""
    drift_detected: bool = False
    drifted_features: list[str] = field(default_factory=list)
    drift: dict[str, Any] | None = None
    # Production's training data, as its lineage tags give it.
    baseline: dict[str, Any] | None = None


def decide(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    policy: PromotionPolicy,
    interval: DeltaInterval | None = None,
    *,
    blocker: str | None = None,
) -> tuple[bool, list[str], bool]:
    """Apply the promotion rule.

    Promote when the absolute thresholds hold (RMSE <= max, R² >= min) and either there is no
    production model or the whole interval of ΔRMSE (candidate - production) lies below
    ``-min_improvement``: better by the margin beyond the noise of the holdout, not merely on
    average. A forced promotion skips the rule but is reported as forced.

    Args:
        candidate: Candidate metrics (``rmse``, ``r2``, ...) on the compared rows.
        production: Production's metrics on the same rows, or None if there is none.
        policy: Thresholds, margin and interval settings.
        interval: The paired bootstrap interval of ΔRMSE; required with ``production``.
        blocker: Why the two cannot be compared fairly (e.g. production's training data is
            gone), which refuses promotion unless forced.

    Returns:
        ``(promote, reasons, forced)``: every reason, passing or failing, in plain words.

    Raises:
        ValueError: ``production`` without ``interval``.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation import EvaluationResult

    if production is not None and interval is None and blocker is None:
        raise ValueError("comparing with production needs the interval of ΔRMSE")

    rmse, r2 = candidate["rmse"], candidate["r2"]
    # Each absolute check: thresholds for MLflow's validator, and the sentence that says what
    # held or what failed.
    checks: list[tuple[dict[str, Any], str, str]] = [
        (
            {
                "root_mean_squared_error": MetricThreshold(
                    threshold=float(policy.max_rmse), greater_is_better=False
                )
            },
            f"RMSE {rmse:.4f} is at most the maximum of {policy.max_rmse:g}",
            f"RMSE {rmse:.4f} is above the maximum of {policy.max_rmse:g}",
        ),
        (
            {"r2_score": MetricThreshold(threshold=float(policy.min_r2), greater_is_better=True)},
            f"R² {r2:.4f} is at least the minimum of {policy.min_r2:g}",
            f"R² {r2:.4f} is below the minimum of {policy.min_r2:g}",
        ),
    ]
    reasons: list[str] = []
    passed_all = True
    result = EvaluationResult(
        metrics={"root_mean_squared_error": float(rmse), "r2_score": float(r2)}, artifacts={}
    )
    for thresholds, held, failed in checks:
        try:
            from mlflow import validate_evaluation_results

            validate_evaluation_results(thresholds, result, None)
            reasons.append(held)
        except MlflowException as exc:
            if type(exc).__name__ != "ModelValidationFailedException":
                raise
            passed_all = False
            reasons.append(failed)
    if blocker is not None:
        passed_all = False
        reasons.append(f"{blocker}, so the comparison cannot be trusted")
    elif production is not None and interval is not None:
        margin, prod_rmse = policy.min_improvement, production["rmse"]
        span = (
            f"RMSE {rmse:.4f} vs production's {prod_rmse:.4f}: the difference is"
            f" {interval.delta:+.4f}, and its {interval.level:.0%} interval is"
            f" [{interval.low:+.4f}, {interval.high:+.4f}] ({interval.resamples} paired"
            f" resamples of {interval.rows} holdout rows)"
        )
        if interval.high < -margin:
            reasons.append(f"{span}; all of it is more than {margin:g} below zero")
        else:
            passed_all = False
            reasons.append(
                f"{span}; it does not lie entirely more than {margin:g} below zero, so the"
                " candidate is not better beyond the noise"
            )
    if production is None and blocker is None:
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


def _predict(model_uri: str, rows: Any) -> Any:
    """Load a registered model the way the server does and predict ``rows``."""
    import mlflow
    import numpy as np

    model = mlflow.pyfunc.load_model(model_uri)
    return model, np.asarray(model.predict(rows), dtype="float64")


def compare_with_production(
    *,
    tracking_uri: str,
    experiment_name: str,
    candidate: Candidate,
    policy: PromotionPolicy,
    airflow_run_id: str,
    s3_client: Any | None = None,
) -> Decision:
    """Score candidate and production on the same holdout rows, measure drift and decide.

    The rows compared are the candidate's holdout minus any row production was trained on
    (none, when both were split by content hash). The decision and its reasons go to the
    candidate version's tags and description, and with the plots to the candidate's run.

    Args:
        tracking_uri: MLflow tracking server.
        experiment_name: Experiment of the pipeline's runs (kept for the links).
        candidate: The registered candidate.
        policy: Thresholds, margin, interval and drift settings, and the force flag.
        airflow_run_id: The Airflow run (recorded in the decision's tags).
        s3_client: boto3 S3 client for ``s3://`` snapshots (the candidate's and production's).
    """
    import numpy as np

    from wine_quality.data.ingest import load_snapshot
    from wine_quality.gate import drift as drift_stats
    from wine_quality.gate.record import figures as decision_figures
    from wine_quality.gate.record import metrics as decision_metrics
    from wine_quality.gate.record import record_decision
    from wine_quality.gate.stats import paired_bootstrap_delta_rmse
    from wine_quality.model.lineage import LineageError, version_training_data

    # What scoring two models, the interval, drift and the plots import, in one pass.
    preload("mlflow.pyfunc", "sklearn.pipeline", "scipy.stats", "matplotlib.figure")
    with using(tracking_uri) as mlflow_client:
        current = None
        if candidate.snapshot_uri and candidate.split_rule.startswith(f"{SPLIT_RULE}:"):
            # The holdout is a function of the snapshot: rebuilt here rather than downloaded
            # through the tracking server, and proved the same rows by its digest below.
            current = load_snapshot(
                candidate.snapshot_uri, candidate.data_sha256, s3_client=s3_client
            )
            fraction = float(candidate.split_rule.partition(":")[2])
            holdout = current[in_holdout(current, fraction)].reset_index(drop=True)
        else:
            holdout = load_holdout(candidate.holdout_uri, tracking_uri)
        digest = holdout_digest(holdout)
        if digest != candidate.holdout_digest:
            raise RuntimeError(
                f"holdout digest {digest} differs from the one recorded at training"
                f" ({candidate.holdout_digest}): refusing to compare on different rows"
            )
        prod_version = alias_version(mlflow_client, PRODUCTION_ALIAS)
        baseline = baseline_rows = blocker = None
        if prod_version is not None:
            try:
                baseline, baseline_rows = version_training_data(
                    mlflow_client,
                    prod_version,
                    s3_client=s3_client,
                    loaded={candidate.data_sha256: current} if current is not None else None,
                )
            except LineageError as exc:
                log.warning("cannot rebuild production's training data: %s", exc)
                blocker = f"production's training data cannot be read back ({exc})"
        rows, overlap = holdout, 0
        if baseline is not None and baseline.split_rule != candidate.split_rule:
            # Split by another rule (or fraction): remove what production trained on. Under the
            # same content-hash rule the two sides are disjoint by construction.
            seen = np.isin(row_groups(holdout), row_groups(baseline_rows))
            overlap = int(seen.sum())
            rows = holdout[~seen].reset_index(drop=True)
            if len(rows) < config.MIN_COMPARISON_ROWS:
                blocker = (
                    f"only {len(rows)} of {len(holdout)} holdout rows were not used to train"
                    f" production (at least {config.MIN_COMPARISON_ROWS} are needed)"
                )
                rows = holdout
        features = rows.loc[:, list(FEATURES)].astype("float64")
        y = rows[TARGET].to_numpy(dtype="float64")
        candidate_model, candidate_pred = _predict(candidate.model_uri, features)
        candidate_metrics = regression_metrics(y, candidate_pred)
        prod_metrics = prod_pred = interval = deltas = None
        if prod_version is not None:
            _, prod_pred = _predict(config.model_uri(prod_version), features)
            prod_metrics = regression_metrics(y, prod_pred)
            interval, deltas = paired_bootstrap_delta_rmse(
                y,
                candidate_pred,
                prod_pred,
                level=policy.ci_level,
                resamples=policy.bootstrap_resamples,
                seed=config.SEED,
            )
        drift_report = None
        if baseline_rows is not None and candidate.snapshot_uri:
            if current is None:
                current = load_snapshot(
                    candidate.snapshot_uri, candidate.data_sha256, s3_client=s3_client
                )
            drift_report = drift_stats.compare(
                baseline_rows, current, psi_threshold=policy.drift_psi, ks_threshold=policy.drift_ks
            )
        promote, reasons, forced = decide(
            candidate_metrics, prod_metrics, policy, interval, blocker=blocker
        )
        if overlap:
            reasons.append(
                f"{overlap} holdout rows that production was trained on were left out of the"
                f" comparison ({len(rows)} compared)"
            )
        if drift_report is not None:
            reasons += drift_report.reasons()
        elif prod_version is not None:
            reasons.append("drift was not measured: production's training data is not at hand")
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
            delta_rmse=interval.delta if interval else None,
            delta_rmse_ci_low=interval.low if interval else None,
            delta_rmse_ci_high=interval.high if interval else None,
            ci_level=interval.level if interval else None,
            bootstrap_resamples=interval.resamples if interval else None,
            compared_rows=len(rows),
            holdout_overlap_rows=overlap,
            split_rule=candidate.split_rule,
            drift_detected=bool(drift_report and drift_report.drift_detected),
            drifted_features=list(drift_report.drifted_features) if drift_report else [],
            drift=drift_report.to_dict() if drift_report else None,
            baseline=asdict(baseline) if baseline else None,
        )
        # Logged as soon as it is made: it is what a person opens this task's log for.
        log.info("%s", explain(decision))
        figures = decision_figures(
            y,
            candidate_pred,
            prod_pred,
            decision,
            candidate_model=candidate_model,
            deltas=deltas,
            drift_report=drift_report,
        )
        record_decision(
            mlflow_client,
            candidate,
            decision,
            figures=figures,
            metrics=decision_metrics(decision) | (drift_report.metrics() if drift_report else {}),
            experiment_name=experiment_name,
            airflow_run_id=airflow_run_id,
        )
    return decision


def promotion_wanted(decision: Decision) -> bool:
    """Whether the run goes on to promotion; says which way and why in the log."""
    log.info(
        "%s: %s",
        "going on to promotion" if decision.promote else "production is kept; promotion is skipped",
        "; ".join(decision.reasons),
    )
    return decision.promote
