"""The run summary: each step passed, failed or did not run, told apart from task states."""

from __future__ import annotations

import pytest

from wine_quality.pipeline import STEPS, step_status, summarize

DECISION = {
    "promote": True, "forced": True, "reasons": ["promotion was forced"],
    "candidate_metrics": {"rmse": 0.6}, "production_version": "1",
    "production_metrics": {"rmse": 0.6},
}  # fmt: skip
OUTPUTS = {
    "ingest": {"rows": 1599, "sha256": "abc"},
    "validate": {"rows": 1599},
    "train": {"version": "2", "run_id": "r2"},
    "evaluate": DECISION,
    "promote": {"version": "2"},
    "deploy": {"version": "2"},
    "canary": {"passed": True, "p95_ms": 7.0, "rows": 51},
    "rollback": {"rolled_back": True, "production": "1", "served_version": "1"},
}


@pytest.mark.parametrize(
    ("state", "status"),
    [("success", "passed"), ("failed", "failed"), ("skipped", "not run"),
     ("upstream_failed", "not run"), (None, "not run"), ("removed", "not run")],
)  # fmt: skip
def test_step_status(state, status):
    assert step_status(state) == status


def run(states: dict[str, str], outputs: dict | None = None) -> dict:
    outputs = OUTPUTS if outputs is None else outputs
    results = {name: outputs[name] if states.get(name) == "success" else None for name in STEPS}
    return summarize(results, states, airflow_run_id="manual__1")


def test_everything_passed():
    summary = run(dict.fromkeys(STEPS[:-1], "success") | {"rollback": "skipped"})
    assert summary["steps"] == dict.fromkeys(STEPS[:-1], "passed") | {"rollback": "not run"}
    assert summary["canary"] == {"passed": True, "p95_ms": 7.0, "rows": 51}
    assert summary["decision"] == "forced"
    assert summary["rollback"] == "not run"
    assert summary["validation"] == "passed"


def test_deploy_failed_so_the_canary_did_not_run():
    states = dict.fromkeys(STEPS[:5], "success") | {
        "deploy": "failed", "canary": "upstream_failed", "rollback": "success",
    }  # fmt: skip
    summary = run(states)
    assert summary["steps"]["deploy"] == "failed"
    assert summary["canary"] == "not run"
    assert summary["rollback"]["rolled_back"] is True


def test_canary_failed():
    states = dict.fromkeys(STEPS[:6], "success") | {"canary": "failed", "rollback": "success"}
    summary = run(states)
    assert summary["canary"] == "failed"
    assert summary["rollback"]["production"] == "1"


def test_not_better_skips_the_release():
    keep = {**DECISION, "promote": False, "forced": False}
    states = dict.fromkeys(STEPS[:4], "success") | dict.fromkeys(STEPS[4:], "skipped")
    summary = run(states, {**OUTPUTS, "evaluate": keep})
    assert summary["decision"] == "keep production"
    assert summary["reasons"] == keep["reasons"]
    assert [summary["steps"][s] for s in STEPS[4:]] == ["not run"] * 4
    assert summary["promoted_version"] is None


def test_validation_failed_and_nothing_after_it_ran():
    not_run = dict.fromkeys(STEPS[2:], "upstream_failed")
    states = {"ingest": "success", "validate": "failed"} | not_run
    summary = run(states)
    assert summary["validation"] == "failed"
    assert summary["decision"] == "not made"
    assert summary["candidate_version"] is None
    assert summary["canary"] == summary["rollback"] == "not run"


def test_the_airflow_run_id_is_not_mistaken_for_an_mlflow_run():
    summary = run(dict.fromkeys(STEPS, "success"))
    assert summary["airflow_run_id"] == "manual__1"
    assert "run_id" not in summary
