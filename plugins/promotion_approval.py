"""The optional human approval between ``should_promote`` and ``promote`` in ``wine_retraining``.

Airflow's ``ApprovalOperator`` asks its question (subject, body, Approve/Reject) and parks the
task until someone answers in the UI's Required Actions or through the REST API; on Airflow 3.3
the scheduler resolves an unanswered one when ``response_timeout`` has passed, with the
``defaults`` as the answer (here: Reject). On Reject it skips the rest of the release at once
(promote, deploy, canary, rollback: :mod:`release_scope`) and the run ends green.

This subclass decides first whether to ask at all (``wine_quality.release.approval``): when no
approval is needed it returns at once, asks nothing and leaves no request behind. Whatever
happens, its return value is the outcome (``approved``, ``rejected`` or ``not_required``, why,
and by whom), which the summary records on the candidate's model version (a timeout is a
rejection by nobody).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from mlflow_links import ui_base, version_link
from release_scope import ReleaseScopedSkip

from wine_quality.core.config import DEFAULT_APPROVAL_TIMEOUT_MINUTES

if TYPE_CHECKING:
    from airflow.sdk import Context

# `airflow dags test` creates its run with triggered_by=TEST, which a task's context does not
# carry in Airflow 3.3; the triggering user it records, "dag_test", is what a task can see.
DAGS_TEST_USER = "dag_test"


def is_dags_test(context: Context) -> bool:
    """Whether this run was made by ``airflow dags test`` (``make run``)."""
    return getattr(context["dag_run"], "triggering_user_name", None) == DAGS_TEST_USER


class PromotionApproval(ReleaseScopedSkip, ApprovalOperator):
    """Ask a person to approve the promotion, if the run's ``approval`` setting says so.

    Args:
        decision: The ``evaluate`` task's output (an XComArg: resolved when the task runs).
    """

    template_fields = (*ApprovalOperator.template_fields, "decision")

    def __init__(self, *, decision: Any, **kwargs: Any) -> None:
        super().__init__(
            # Replaced when the task runs: the question names the candidate.
            subject="Promote the candidate to production?",
            # What the scheduler answers when nobody does in time: silence is not consent.
            defaults=[self.REJECT],
            # Replaced by the run's `approval_timeout_minutes`; given here as well so that the
            # DAG's execution_timeout is not mistaken for a response timeout.
            response_timeout=timedelta(minutes=DEFAULT_APPROVAL_TIMEOUT_MINUTES),
            # Reject skips every later release task at once (ReleaseScopedSkip keeps it there).
            ignore_downstream_trigger_rules=True,
            **kwargs,
        )
        self.decision = decision

    def execute(self, context: Context) -> Any:
        from wine_quality.core.handoff import from_xcom, to_xcom
        from wine_quality.gate.evaluate import Decision
        from wine_quality.release.approval import not_asked, request_approval

        params = context["params"]
        decision = from_xcom(Decision, self.decision)
        request = request_approval(
            decision,
            mode=params["approval"],
            dags_test=is_dags_test(context),
            timeout_minutes=params["approval_timeout_minutes"],
            # A decision from before drift was measured reads as no drift (the fields' defaults).
            drift_detected=decision.drift_detected,
            drifted_features=list(decision.drifted_features),
            candidate_url=version_link({"version": decision.candidate_version}, ui_base()),
        )
        if not request.needed:
            approval = not_asked(request.reason)
            self.log.info("approval: %s", approval.reason)
            return to_xcom(approval)
        self.log.info("approval asked: %s", request.reason)
        self.subject, self.body = request.subject, request.body
        self.response_timeout = timedelta(minutes=params["approval_timeout_minutes"])
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from airflow.sdk.bases.xcom import BaseXCom

        from wine_quality.core.handoff import to_xcom
        from wine_quality.release.approval import answered

        if "error" in event:  # no answer and no default to take: the parent fails the task
            return super().execute_complete(context, event)
        approval = answered(
            approved=event["chosen_options"] == [self.APPROVE],
            by=(event.get("responded_by_user") or {}).get("name"),
            timed_out=bool(event.get("timedout")),
            timeout_minutes=context["params"]["approval_timeout_minutes"],
        )
        self.log.info("approval: %s", approval.reason)
        # On Reject the parent skips the release by raising, so a return value would never be
        # pushed: the outcome is pushed first, as this task's return value, for the summary.
        context["ti"].xcom_push(key=BaseXCom.XCOM_RETURN_KEY, value=to_xcom(approval))
        super().execute_complete(context, event)
        return None
