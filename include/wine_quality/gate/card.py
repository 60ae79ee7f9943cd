"""A short model card: the registered version's description, shown on its MLflow page.

It answers what a reviewer asks first, without opening the run: what data, how good (with the
interval, not a bare number), what was decided and why, whether the data drifted, and where the
evidence is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wine_quality.core.config import MODEL_NAME

if TYPE_CHECKING:
    from wine_quality.gate.evaluate import Decision
    from wine_quality.model.train import Candidate


def _metrics_line(name: str, metrics: dict[str, float] | None) -> str:
    if not metrics:
        return f"| {name} | - | - | - |"
    return f"| {name} | {metrics['rmse']:.4f} | {metrics['mae']:.4f} | {metrics['r2']:.4f} |"


def render_model_card(
    candidate: Candidate,
    decision: Decision,
    *,
    experiment_id: str | None,
    airflow_run_id: str,
    plots: list[str],
) -> str:
    """The card as Markdown (MLflow renders a version's description as Markdown).

    Links are relative to the MLflow UI (``#/...``), so they work whatever host serves it.
    """
    from wine_quality.gate.evaluate import outcome

    run_link = (
        f"[training run](#/experiments/{experiment_id}/runs/{candidate.run_id})"
        if experiment_id
        else f"training run `{candidate.run_id}`"
    )
    lines = [
        f"**{MODEL_NAME} v{candidate.version}**: ElasticNet (standardised features) on the UCI"
        " red wine quality data.",
        "",
        "**Data**",
        f"- sha256 `{candidate.data_sha256 or 'unknown'}`, snapshot `{candidate.snapshot_uri}`",
        f"- holdout: {decision.holdout_rows} rows, digest `{decision.holdout_digest}`, split rule"
        f" `{decision.split_rule or 'unknown'}`; {decision.compared_rows} rows compared",
        f"- hyperparameters: alpha {candidate.best_params.get('alpha')},"
        f" l1_ratio {candidate.best_params.get('l1_ratio')}",
        "",
        "**Metrics on the compared rows**",
        "",
        "| model | RMSE | MAE | R² |",
        "| --- | --- | --- | --- |",
        _metrics_line(f"candidate v{candidate.version}", decision.candidate_metrics),
        _metrics_line(
            f"production v{decision.production_version}"
            if decision.production_version
            else "production (none)",
            decision.production_metrics,
        ),
        "",
    ]
    if decision.delta_rmse_ci_low is not None:
        lines += [
            f"ΔRMSE (candidate - production) {decision.delta_rmse:+.4f}, {decision.ci_level:.0%}"
            f" interval [{decision.delta_rmse_ci_low:+.4f}, {decision.delta_rmse_ci_high:+.4f}]"
            f" from {decision.bootstrap_resamples} paired bootstrap resamples.",
            "",
        ]
    lines += [f"**Decision: {outcome(decision.promote, decision.forced)}**", ""]
    lines += [f"- {reason}" for reason in decision.reasons]
    lines += [
        "",
        "**Drift against production's training data**: "
        + (
            f"detected in {', '.join(decision.drifted_features)}"
            if decision.drift_detected
            else ("none detected" if decision.drift is not None else "not measured")
        ),
        "",
        f"**Evidence**: {run_link} (plots: {', '.join(f'`{p}`' for p in plots)};"
        f" decision JSON under `decision/`); Airflow run `{airflow_run_id}`.",
    ]
    return "\n".join(lines)
