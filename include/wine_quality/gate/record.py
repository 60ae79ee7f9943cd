"""Where a decision is written for people: the candidate's run and its model version.

The version gets the decision as tags and a model card as its description; the candidate's
training run gets the comparison and drift metrics, the decision JSON and the plots under
``plots/``. Separate from the rule (:mod:`wine_quality.gate.evaluate`), which stays a pure
function of the numbers.
"""

from __future__ import annotations

import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wine_quality.core.config import FEATURES, MODEL_NAME
from wine_quality.gate.evaluate import Decision, outcome

# Requests to the tracking server in flight at once while the decision is written.
UPLOADS = 8

if TYPE_CHECKING:
    from wine_quality.gate.drift import DriftReport
    from wine_quality.model.train import Candidate


def figures(
    y: Any,
    candidate_pred: Any,
    prod_pred: Any | None,
    decision: Decision,
    *,
    candidate_model: Any,
    deltas: Any | None,
    drift_report: DriftReport | None,
) -> dict[str, Any]:
    """The decision's pictures by artifact name (under ``plots/`` of the candidate's run)."""
    from wine_quality.gate import plots

    pipeline = candidate_model.unwrap_python_model().pipeline
    figures = {
        "plots/predictions.png": plots.predictions_figure(
            y,
            candidate_pred,
            prod_pred,
            candidate_label=f"candidate v{decision.candidate_version}",
            production_label=(
                f"production v{decision.production_version}"
                if decision.production_version
                else None
            ),
        ),
        "plots/coefficients.png": plots.coefficients_figure(
            list(FEATURES),
            [float(c) for c in pipeline.named_steps["model"].coef_],
            title=f"candidate v{decision.candidate_version}: standardised coefficients",
        ),
    }
    if deltas is not None and decision.delta_rmse_ci_low is not None:
        figures["plots/delta_rmse_bootstrap.png"] = plots.bootstrap_figure(
            deltas,
            ci_low=decision.delta_rmse_ci_low,
            ci_high=float(decision.delta_rmse_ci_high),
            level=float(decision.ci_level),
            margin=float(decision.policy["min_improvement"]),
        )
    if drift_report is not None:
        figures["plots/drift.png"] = plots.drift_figure(drift_report)
    return figures


def metrics(decision: Decision) -> dict[str, float]:
    """The comparison as metrics of the candidate's run."""
    metrics = {f"eval_{k}": v for k, v in decision.candidate_metrics.items()}
    metrics |= {f"production_{k}": v for k, v in (decision.production_metrics or {}).items()}
    metrics["compared_rows"] = float(decision.compared_rows)
    metrics["holdout_overlap_rows"] = float(decision.holdout_overlap_rows)
    for name in ("delta_rmse", "delta_rmse_ci_low", "delta_rmse_ci_high"):
        if getattr(decision, name) is not None:
            metrics[name] = float(getattr(decision, name))
    return metrics


def decision_tags(decision: Decision, airflow_run_id: str) -> dict[str, str]:
    """The decision as tags of the candidate version (values are strings, 5,000 chars max)."""
    tags = {
        "decision": outcome(decision.promote, decision.forced).replace(" ", "_"),
        "decision_reasons": "; ".join(decision.reasons)[:4900],
        "decision_airflow_run_id": airflow_run_id,
        "compared_with_version": decision.production_version or "none",
        "eval_holdout_digest": decision.holdout_digest,
        "eval_rmse": f"{decision.candidate_metrics['rmse']:.6f}",
        "eval_r2": f"{decision.candidate_metrics['r2']:.6f}",
        "drift_detected": str(decision.drift_detected).lower(),
        "drifted_features": ",".join(decision.drifted_features) or "none",
    }
    if decision.delta_rmse_ci_low is not None:
        tags |= {
            "delta_rmse": f"{decision.delta_rmse:.6f}",
            "delta_rmse_ci_low": f"{decision.delta_rmse_ci_low:.6f}",
            "delta_rmse_ci_high": f"{decision.delta_rmse_ci_high:.6f}",
            "ci_level": f"{decision.ci_level:g}",
            "bootstrap_resamples": str(decision.bootstrap_resamples),
        }
    return tags


def record_decision(
    mlflow_client: Any,
    candidate: Candidate,
    decision: Decision,
    *,
    figures: dict[str, Any],
    metrics: dict[str, float],
    experiment_name: str,
    airflow_run_id: str,
) -> None:
    """Write the decision where people look: version tags and card, run metrics, JSON, plots."""
    from mlflow.entities import Metric

    from wine_quality.gate.card import render_model_card

    version = str(candidate.version)
    # Each tag, the metrics, the JSON and each plot is a request of its own to the tracking
    # server (MLflow has no batch call for version tags): they go out together, a few at a
    # time, instead of one after another. Plots are rendered here, in this thread (matplotlib
    # is not thread-safe), and only their upload is shared out.
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(UPLOADS) as pool:
        calls = [
            pool.submit(mlflow_client.set_model_version_tag, MODEL_NAME, version, key, value)
            for key, value in decision_tags(decision, airflow_run_id).items()
        ]
        # One call for every metric: the comparison's and the drift statistics.
        now = int(time.time() * 1000)
        metric_list = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
        calls.append(pool.submit(mlflow_client.log_batch, candidate.run_id, metrics=metric_list))
        path = Path(tmp) / "decision" / f"decision-v{version}.json"
        path.parent.mkdir()
        path.write_text(json.dumps(asdict(decision), indent=2))
        calls.append(
            pool.submit(mlflow_client.log_artifact, candidate.run_id, str(path), "decision")
        )
        for artifact_file, figure in figures.items():
            png = Path(tmp) / artifact_file
            png.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(png)
            artifact_dir = str(Path(artifact_file).parent) if "/" in artifact_file else None
            calls.append(
                pool.submit(mlflow_client.log_artifact, candidate.run_id, str(png), artifact_dir)
            )
        for call in calls:
            call.result()  # A failure is raised once every call has ended (pool exit).
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    mlflow_client.update_model_version(
        MODEL_NAME,
        version,
        description=render_model_card(
            candidate,
            decision,
            experiment_id=experiment.experiment_id if experiment else None,
            airflow_run_id=airflow_run_id,
            plots=sorted(figures),
        ),
    )
