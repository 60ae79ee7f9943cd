"""The run note: the decision first, each reason word for word, within Airflow's limit."""

from __future__ import annotations

import pytest

from wine_quality.report.note import NOTE_LIMIT, publish_note, render_note

SUMMARY = {
    "decision": "keep production",
    "reasons": [
        "RMSE 0.6505 is not at least 0.005 below production's 0.6505",
        "R² 0.3204 is at least the minimum of 0.25",
    ],
    "candidate_version": "2",
    "candidate_metrics": {"rmse": 0.65048, "r2": 0.32},
    "served_version": "1",
    "steps": {"ingest": "passed", "promote": "not run", "deploy": "not run"},
}


def test_note_starts_with_the_decision_then_each_reason():
    lines = render_note(SUMMARY).splitlines()
    assert lines[0] == "**Decision: keep production**"
    assert lines[1:3] == [f"- {reason}" for reason in SUMMARY["reasons"]]
    assert lines[-1] == "candidate v2 (RMSE 0.6505); served v1"


@pytest.mark.parametrize(
    ("approval", "header"),
    [
        ({"outcome": "rejected", "reason": "rejected by bob", "by": "bob"},
         "**Decision: promote**, rejected by bob"),
        ({"outcome": "rejected", "reason": "rejected: no answer within 60 minutes"},
         "**Decision: promote**, rejected: no answer within 60 minutes"),
        ({"outcome": "approved", "reason": "approved by alice", "by": "alice"},
         "**Decision: promote**, approved by alice"),
        # Nobody was asked: the decision alone.
        ({"outcome": "not_required", "reason": "not asked: approval is 'never'"},
         "**Decision: promote**"),
        ("not run", "**Decision: promote**"),
    ],
    ids=["rejected", "timed-out", "approved", "not-asked", "not-run"],
)  # fmt: skip
def test_a_persons_answer_is_in_the_header(approval, header):
    note = render_note({**SUMMARY, "decision": "promote", "approval": approval})
    assert note.splitlines()[0] == header


def test_note_names_failed_steps_and_a_decision_never_made():
    note = render_note({"decision": "not made", "reasons": None, "steps": {"ingest": "failed"}})
    assert note.splitlines()[0] == "**Decision: not made**"
    assert note.splitlines()[-1] == "failed: ingest"


def test_note_is_cut_to_airflows_limit():
    long = {**SUMMARY, "reasons": ["x" * 300] * 10}
    note = render_note(long)
    assert len(note) == NOTE_LIMIT
    assert note.endswith("…")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"AIRFLOW__API__BASE_URL": "http://127.0.0.1:9"},
        {"WINE_AIRFLOW_API_USER": "pipeline", "WINE_AIRFLOW_API_PASSWORD": "pw"},
    ],
)
def test_without_an_api_login_nothing_is_written(env):
    assert publish_note(SUMMARY, dag_id="d", run_id="r", env=env) is False


def test_an_unreachable_api_server_is_not_an_error():
    # `airflow dags test` runs without an API server: the summary must still succeed.
    env = {
        "WINE_AIRFLOW_API_URL": "http://127.0.0.1:9",
        "WINE_AIRFLOW_API_USER": "pipeline",
        "WINE_AIRFLOW_API_PASSWORD": "pw",
    }
    assert publish_note(SUMMARY, dag_id="d", run_id="r", env=env, timeout=2) is False
