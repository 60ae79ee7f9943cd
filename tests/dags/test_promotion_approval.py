"""The approval task: asks only when needed, and turns every answer (or silence) into an outcome.

Driven as the task runner drives it — ``execute`` with the task's context, then, after the
answer, ``execute_complete`` with the event the API server or the scheduler's timeout sweep
resumes it with — against a fake task instance, so no Airflow services are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from airflow.providers.standard.operators import hitl
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup
from airflow.sdk.exceptions import DownstreamTasksSkipped, TaskAwaitingInput

from plugins.promotion_approval import PromotionApproval
from wine_quality.core.handoff import to_xcom
from wine_quality.gate.evaluate import Decision

DECISION = to_xcom(
    Decision(
        promote=True, reasons=["RMSE 0.6400 is at least 0.005 below production's 0.6500"],
        candidate_version="3", candidate_metrics={"rmse": 0.64, "r2": 0.35},
        production_version="2", production_metrics={"rmse": 0.65, "r2": 0.33},
        holdout_digest="d", holdout_rows=320,
    )
)  # fmt: skip
DRIFTED = {**DECISION, "drift_detected": True, "drifted_features": ["alcohol", "pH"]}


@dataclass
class FakeTaskInstance:
    id: Any = field(default_factory=uuid4)
    map_index: int = -1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def approval_task(decision: dict) -> PromotionApproval:
    """The approval in a release group as the DAG has it, with a summary outside the group."""
    with DAG("approval_test", schedule=None):
        with TaskGroup("release", prefix_group_id=False):
            task = PromotionApproval(task_id="approve", decision=decision)
            deploy = EmptyOperator(task_id="deploy")
            task >> EmptyOperator(task_id="promote") >> deploy
        deploy >> EmptyOperator(task_id="report", trigger_rule="all_done")
    return task


def context(task, *, approval="on_drift", minutes=90, user="admin") -> dict[str, Any]:
    ti = FakeTaskInstance()
    return {
        "params": {"approval": approval, "approval_timeout_minutes": minutes},
        "dag_run": SimpleNamespace(triggering_user_name=user),
        "task_instance": ti,
        "ti": ti,
        "task": task,
    }


@pytest.fixture
def requests_made(monkeypatch):
    """Every approval request the task wrote (the operator's call to the execution API)."""
    made: list[dict] = []
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **kwargs: made.append(kwargs))
    return made


@pytest.mark.parametrize(
    ("decision", "approval", "user", "reason"),
    [
        (DECISION, "on_drift", "admin", "not asked: no drift was detected and approval is "
         "'on_drift'"),
        (DRIFTED, "never", "admin", "not asked: approval is 'never' (drift was detected)"),
        # make run: `airflow dags test` records "dag_test" as the run's triggering user.
        (DRIFTED, "on_drift", "dag_test", "not asked: an `airflow dags test` run does not wait "
         "for approval 'on_drift' (drift was detected); set approval to 'always' to be asked"),
    ],
    ids=["no-drift", "never", "dags-test"],
)  # fmt: skip
def test_not_needed_returns_at_once_and_asks_nothing(
    requests_made, decision, approval, user, reason
):
    task = approval_task(decision)
    result = task.execute(context(task, approval=approval, user=user))
    # Nobody answered: no `by` (an optional field is left out of the XCom while it is None).
    assert result == {"outcome": "not_required", "reason": reason, "timed_out": False}
    assert requests_made == []


@pytest.mark.parametrize(
    ("decision", "approval", "user"),
    [(DRIFTED, "on_drift", "admin"), (DECISION, "always", "admin"),
     (DECISION, "always", "dag_test")],
    ids=["drift", "always", "always-in-dags-test"],
)  # fmt: skip
def test_needed_asks_and_waits_with_the_runs_timeout(requests_made, decision, approval, user):
    task = approval_task(decision)
    with pytest.raises(TaskAwaitingInput) as parked:
        task.execute(context(task, approval=approval, minutes=1.5, user=user))
    assert parked.value.timeout == timedelta(minutes=1.5)
    assert parked.value.method_name == "execute_complete"
    (request,) = requests_made
    assert request["subject"] == "Promote ElasticNetWineModel version 3 to production?"
    assert request["options"] == ["Approve", "Reject"]
    assert request["defaults"] == ["Reject"]
    assert "replacing version 2" in request["body"]
    assert "within 1.5 minutes counts as a rejection" in request["body"]
    assert ("drift: alcohol, pH" in request["body"]) is (decision is DRIFTED)


def event(option: str, user: str | None, *, timed_out: bool = False) -> dict[str, Any]:
    """What the API server (an answer) or the scheduler's sweep (a timeout) resumes with."""
    return {
        "chosen_options": [option],
        "params_input": {},
        "responded_at": datetime(2026, 11, 29, 9, 0, tzinfo=UTC),
        "responded_by_user": {"id": user, "name": user} if user else None,
        "timedout": timed_out,
    }


def test_an_approval_lets_promote_run():
    task = approval_task(DRIFTED)
    ctx = context(task)
    assert task.execute_complete(ctx, event("Approve", "alice")) is None
    assert ctx["ti"].xcoms["return_value"] == {
        "outcome": "approved", "reason": "approved by alice", "by": "alice", "timed_out": False
    }  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (event("Reject", "bob"),
         {"outcome": "rejected", "reason": "rejected by bob", "by": "bob", "timed_out": False}),
        (event("Reject", None, timed_out=True),
         {"outcome": "rejected", "reason": "rejected: no answer within 90 minutes",
          "timed_out": True}),
    ],
    ids=["rejected", "timed-out"],
)  # fmt: skip
def test_a_rejection_skips_promote_and_keeps_the_outcome(answer, outcome):
    task = approval_task(DRIFTED)
    ctx = context(task)
    # The task runner turns this into skipped `promote` and `deploy` (the rest of the release,
    # at once) and a successful approval task; the summary outside the release is left to run.
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        task.execute_complete(ctx, answer)
    assert sorted(skipped.value.tasks) == ["deploy", "promote"]
    # Pushed before the skip ends the attempt: the summary reads it as the task's return value.
    assert ctx["ti"].xcoms["return_value"] == outcome


def test_no_answer_without_a_default_fails_as_airflow_does():
    task = approval_task(DRIFTED)
    with pytest.raises(hitl.HITLTimeoutError):
        task.execute_complete(context(task), {"error": "no answer", "error_type": "timeout"})
