"""The approval rules: when a person is asked, what they read, and what their answer becomes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from wine_quality.core.handoff import from_xcom, to_xcom
from wine_quality.gate.evaluate import Decision
from wine_quality.release import approval as approval_module
from wine_quality.release.approval import (
    Approval,
    answered,
    approval_needed,
    not_asked,
    record_approval,
    request_approval,
)

DECISION = Decision(
    promote=True, reasons=["RMSE 0.6400 is at least 0.005 below production's 0.6500"],
    candidate_version="3", candidate_metrics={"rmse": 0.64, "r2": 0.35},
    production_version="2", production_metrics={"rmse": 0.65, "r2": 0.33},
    holdout_digest="d", holdout_rows=320,
)  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "drift", "dags_test", "needed"),
    [
        ("always", False, False, True),
        ("always", True, False, True),
        # An explicit request is obeyed even where nobody watches by default.
        ("always", False, True, True),
        ("on_drift", True, False, True),
        ("on_drift", False, False, False),
        # make run (`airflow dags test`) must not hang on the default setting.
        ("on_drift", True, True, False),
        ("on_drift", False, True, False),
        ("never", True, False, False),
        ("never", True, True, False),
    ],
)
def test_when_a_person_is_asked(mode, drift, dags_test, needed):
    asked, reason = approval_needed(mode, drift, dags_test)
    assert asked is needed
    assert f"'{mode}'" in reason
    assert ("no drift was detected" in reason) is not drift
    assert ("airflow dags test" in reason) is (dags_test and mode == "on_drift")


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="sometimes"):
        approval_needed("sometimes", True, False)


def test_no_question_when_none_is_needed():
    request = request_approval(DECISION, mode="on_drift", dags_test=False, timeout_minutes=60)
    assert not request.needed
    assert request.subject == request.body == ""
    assert not_asked(request.reason).reason == (
        "not asked: no drift was detected and approval is 'on_drift'"
    )
    assert not_asked(request.reason).outcome == "not_required"


def test_the_question_has_what_a_person_needs_to_decide():
    request = request_approval(
        DECISION, mode="on_drift", dags_test=False, timeout_minutes=90, drift_detected=True,
        drifted_features=["alcohol", "pH"], candidate_url="http://mlflow/#/models/M/versions/3",
    )  # fmt: skip
    assert request.needed
    assert request.subject == "Promote ElasticNetWineModel version 3 to production?"
    body = request.body
    assert "[version 3](http://mlflow/#/models/M/versions/3)" in body
    assert "replacing version 2" in body
    assert "RMSE 0.6400, R² 0.3500" in body  # candidate
    assert "RMSE 0.6500, R² 0.3300" in body  # production
    assert "drift: alcohol, pH" in body
    assert f"- {DECISION.reasons[0]}" in body
    assert "drift was detected and approval is 'on_drift'" in body
    assert "No answer within 90 minutes counts as a rejection" in body


def test_the_first_model_and_a_forced_promotion_are_said_so():
    first = dataclasses.replace(
        DECISION, production_version=None, production_metrics=None, forced=True
    )
    body = request_approval(first, mode="always", dags_test=False, timeout_minutes=1).body
    assert "version 3 production (forced), replacing nothing (first model)" in body
    assert "- production: none" in body
    assert "- drift: none" in body
    assert "within 1 minute counts" in body


@pytest.mark.parametrize(
    ("approved", "by", "timed_out", "expected"),
    [
        (True, "alice", False, Approval("approved", "approved by alice", "alice")),
        (False, "bob", False, Approval("rejected", "rejected by bob", "bob")),
        # The scheduler's timeout answers with the default (Reject), with nobody as its author.
        (False, None, True,
         Approval("rejected", "rejected: no answer within 0.5 minutes", None, timed_out=True)),
    ],
    ids=["approved", "rejected", "timed-out"],
)  # fmt: skip
def test_an_answer_becomes_the_approval(approved, by, timed_out, expected):
    assert answered(approved=approved, by=by, timed_out=timed_out, timeout_minutes=0.5) == (
        expected
    )


def test_the_approval_survives_the_xcom_boundary():
    value = to_xcom(answered(approved=False, by="bob", timed_out=False, timeout_minutes=1))
    assert json.loads(json.dumps(value)) == value
    assert from_xcom(Approval, value).reason == "rejected by bob"


class FakeClient:
    def __init__(self):
        self.tags: dict[tuple[str, str], dict[str, str]] = {}

    def set_model_version_tag(self, name, version, key, value):
        self.tags.setdefault((name, version), {})[key] = value


@pytest.mark.parametrize(
    ("approval", "tags"),
    [
        (Approval("rejected", "rejected by bob", "bob"),
         {"approval": "rejected", "approval_by": "bob", "approval_reason": "rejected by bob"}),
        (Approval("rejected", "rejected: no answer within 1 minute", timed_out=True),
         {"approval": "rejected", "approval_reason": "rejected: no answer within 1 minute"}),
        (not_asked("approval is 'never' (no drift was detected)"),
         {"approval": "not_required",
          "approval_reason": "not asked: approval is 'never' (no drift was detected)"}),
    ],
    ids=["rejected", "timed-out", "not-asked"],
)  # fmt: skip
def test_the_outcome_is_kept_on_the_candidate_version(monkeypatch, approval, tags):
    fake = FakeClient()
    monkeypatch.setattr(approval_module, "client", lambda uri: fake)
    record_approval(tracking_uri="http://mlflow", version="3", approval=approval)
    record_approval(tracking_uri="http://mlflow", version="3", approval=approval)  # a retry
    assert fake.tags == {("ElasticNetWineModel", "3"): tags}
