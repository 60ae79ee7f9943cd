"""A person's approval before a candidate replaces production: when to ask, what to show, what
was answered, and the answer kept on the candidate's model version.

The asking and the waiting are the orchestrator's (an approval task that parks the run until
someone answers or the time is up); this module decides and words everything, and records the
outcome in MLflow, so the rules are tested without an orchestrator.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wine_quality.core.config import MODEL_NAME
from wine_quality.core.tracking import client

if TYPE_CHECKING:
    from wine_quality.gate.evaluate import Decision

log = logging.getLogger(__name__)

APPROVED = "approved"
REJECTED = "rejected"
NOT_REQUIRED = "not_required"


def approval_needed(mode: str, drift_detected: bool, dags_test: bool) -> tuple[bool, str]:
    """Whether a person must approve this promotion, and why, in words for the log and summary.

    Args:
        mode: ``always``, ``on_drift`` (only when the data drifted) or ``never``.
        drift_detected: Whether the evaluation found the data drifted from training's.
        dags_test: The run is an ``airflow dags test`` (``make run``): nobody is watching it,
            so ``on_drift`` does not stop it; ``always`` is an explicit request and still does.

    Raises:
        ValueError: ``mode`` is none of the three (the DAG's Param allows only those).
    """
    drift = "drift was detected" if drift_detected else "no drift was detected"
    if mode == "never":
        return False, f"approval is 'never' ({drift})"
    if mode == "always":
        return True, f"approval is 'always' ({drift})"
    if mode != "on_drift":
        raise ValueError(f"unknown approval mode {mode!r}: one of always, on_drift, never")
    if dags_test:
        return False, (
            f"an `airflow dags test` run does not wait for approval 'on_drift' ({drift});"
            " set approval to 'always' to be asked"
        )
    if drift_detected:
        return True, "drift was detected and approval is 'on_drift'"
    return False, "no drift was detected and approval is 'on_drift'"


@dataclass(frozen=True)
class ApprovalRequest:
    """Whether to ask, why, and (when asking) the question a person sees."""

    needed: bool
    reason: str
    subject: str = ""
    body: str = ""


@dataclass(frozen=True)
class Approval:
    """What became of the approval: ``approved``, ``rejected`` or ``not_required``.

    ``reason`` is the sentence people read ("rejected by alice", "rejected: no answer within 60
    minutes"); ``by`` is who answered, None when nobody did.
    """

    outcome: str
    reason: str
    by: str | None = None
    timed_out: bool = False


def minutes(value: float) -> str:
    """``60 minutes``, ``1 minute``, ``0.5 minutes``."""
    return f"{value:g} minute{'' if value == 1 else 's'}"


def _metrics(values: Mapping[str, float] | None) -> str:
    if not values:
        return "none"
    return ", ".join(f"{name.upper() if name != 'r2' else 'R²'} {value:.4f}"
                     for name, value in values.items())  # fmt: skip


def request_approval(
    decision: Decision,
    *,
    mode: str,
    dags_test: bool,
    timeout_minutes: float,
    drift_detected: bool = False,
    drifted_features: Sequence[str] = (),
    candidate_url: str = "",
) -> ApprovalRequest:
    """Decide whether to ask (:func:`approval_needed`) and word the question.

    Args:
        decision: The evaluation's decision (it wants a promotion, or this is not reached).
        mode: The run's ``approval`` setting.
        dags_test: The run is an ``airflow dags test``.
        timeout_minutes: How long the question stays open before it counts as a rejection.
        drift_detected: Whether the evaluation found drift.
        drifted_features: The features that drifted.
        candidate_url: The candidate version's page in the MLflow UI ('' if unknown).
    """
    needed, why = approval_needed(mode, drift_detected, dags_test)
    if not needed:
        return ApprovalRequest(needed=False, reason=why)
    version = decision.candidate_version
    production = decision.production_version
    subject = f"Promote {MODEL_NAME} version {version} to production?"
    candidate = f"[version {version}]({candidate_url})" if candidate_url else f"version {version}"
    lines = [
        f"The evaluation wants to make {candidate} production"
        + (" (forced)" if decision.forced else "")
        + f", replacing {f'version {production}' if production else 'nothing (first model)'}.",
        "",
        f"- candidate: {_metrics(decision.candidate_metrics)}",
        f"- production: {_metrics(decision.production_metrics)}",
        f"- holdout: {decision.holdout_rows} rows",
        f"- drift: {', '.join(drifted_features) or 'yes'}" if drift_detected else "- drift: none",
        "",
        "Why the evaluation decided so:",
        *[f"- {reason}" for reason in decision.reasons],
        "",
        f"Why you are asked: {why}.",
        f"**Approve** promotes, deploys and canaries it; **Reject** keeps production. No answer"
        f" within {minutes(timeout_minutes)} counts as a rejection.",
    ]
    return ApprovalRequest(needed=True, reason=why, subject=subject, body="\n".join(lines))


def not_asked(reason: str) -> Approval:
    """The approval when nobody was asked, ``reason`` being :func:`approval_needed`'s."""
    return Approval(outcome=NOT_REQUIRED, reason=f"not asked: {reason}")


def answered(
    *, approved: bool, by: str | None, timed_out: bool, timeout_minutes: float
) -> Approval:
    """The approval from a person's answer, or from the silence that timed it out.

    A timeout takes the request's default answer, a rejection, with nobody as its author.
    """
    if timed_out:
        return Approval(
            outcome=REJECTED,
            reason=f"rejected: no answer within {minutes(timeout_minutes)}",
            timed_out=True,
        )
    who = by or "an unknown user"
    if approved:
        return Approval(outcome=APPROVED, reason=f"approved by {who}", by=by)
    return Approval(outcome=REJECTED, reason=f"rejected by {who}", by=by)


def record_approval(*, tracking_uri: str, version: str, approval: Approval) -> None:
    """Keep the approval on the candidate's model version (tags ``approval``, ``approval_by``,
    ``approval_reason``); writing the same tags again changes nothing."""
    mlflow_client = client(tracking_uri)
    tags = {"approval": approval.outcome, "approval_reason": approval.reason[:4900]}
    if approval.by:
        tags["approval_by"] = approval.by
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(MODEL_NAME, version, key, value)
    log.info("version %s: %s", version, approval.reason)
