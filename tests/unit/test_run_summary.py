"""The run summary: each step passed, failed or did not run, told apart from task states."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from wine_quality.core.handoff import from_xcom, to_xcom
from wine_quality.data.ingest import IngestResult
from wine_quality.gate.evaluate import Decision
from wine_quality.model.train import Candidate
from wine_quality.release.approval import Approval
from wine_quality.release.canary import CanaryReport
from wine_quality.release.deploy import Deployment, Rollback
from wine_quality.release.registry import Promotion
from wine_quality.report import summary as summary_module
from wine_quality.report.summary import STEPS, StepResults, report_run, step_status, summarize
from wine_quality.validation.run import ValidationRun

DECISION = Decision(
    promote=True, forced=True, reasons=["promotion was forced"], candidate_version="2",
    candidate_metrics={"rmse": 0.6}, production_version="1", production_metrics={"rmse": 0.6},
    holdout_digest="d", holdout_rows=320,
)  # fmt: skip
OUTPUTS = {
    "ingest": IngestResult(
        source_uri="wine.csv", snapshot_uri="raw/wine.csv", sha256="abc", rows=1599,
        size_bytes=84199, reused=False,
    ),
    "validate": ValidationRun(rows=1599, expectations=40, sha256="abc", validation_run_id="r1"),
    "train": Candidate(
        run_id="r2", version="2", model_uri="models:/ElasticNetWineModel/2",
        holdout_uri="runs:/r2/holdout/holdout.csv", holdout_digest="d", holdout_rows=320,
        best_params={"alpha": 0.1, "l1_ratio": 0.5},
    ),
    "evaluate": DECISION,
    "approve": Approval(outcome="approved", reason="approved by alice", by="alice"),
    "promote": Promotion(version="2", previous_version="1", already_promoted=False),
    "deploy": Deployment(
        name="ElasticNetWineModel", version="2", model_uri="models:/ElasticNetWineModel/2",
        run_id="r2", loaded_at="2026-01-01T02:00:00+00:00", alias="production",
    ),
    "canary": CanaryReport(
        passed=True, version="2", requests=51, rows=51, p95_ms=7.0, max_abs_diff=0.0
    ),
    "rollback": Rollback(rolled_back=True, production="1", served_version="1"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("state", "status"),
    [("success", "passed"), ("failed", "failed"), ("skipped", "not run"),
     ("upstream_failed", "not run"), (None, "not run"), ("removed", "not run")],
)  # fmt: skip
def test_step_status(state, status):
    assert step_status(state) == status


def upto(step: str) -> list[str]:
    """The steps up to and including ``step``."""
    return list(STEPS[: STEPS.index(step) + 1])


def after(step: str) -> list[str]:
    """The steps after ``step``."""
    return list(STEPS[STEPS.index(step) + 1 :])


def run(states: dict[str, str], outputs: dict | None = None) -> dict:
    outputs = OUTPUTS if outputs is None else outputs
    results = {name: outputs[name] if states.get(name) == "success" else None for name in STEPS}
    return summarize(StepResults(**results), states, airflow_run_id="manual__1")


def test_everything_passed():
    summary = run(dict.fromkeys(STEPS[:-1], "success") | {"rollback": "skipped"})
    assert summary["steps"] == dict.fromkeys(STEPS[:-1], "passed") | {"rollback": "not run"}
    assert summary["canary"] == {"passed": True, "p95_ms": 7.0, "rows": 51}
    assert summary["decision"] == "forced"
    assert summary["rollback"] == "not run"
    assert summary["validation"] == "passed"


def test_deploy_failed_so_the_canary_did_not_run():
    states = dict.fromkeys(upto("promote"), "success") | {
        "deploy": "failed", "canary": "upstream_failed", "rollback": "success",
    }  # fmt: skip
    summary = run(states)
    assert summary["steps"]["deploy"] == "failed"
    assert summary["canary"] == "not run"
    assert summary["rollback"]["rolled_back"] is True


def test_canary_failed():
    states = dict.fromkeys(upto("deploy"), "success") | {"canary": "failed", "rollback": "success"}
    summary = run(states)
    assert summary["canary"] == "failed"
    assert summary["rollback"]["production"] == "1"


def test_not_better_skips_the_release():
    keep = dataclasses.replace(DECISION, promote=False, forced=False)
    states = dict.fromkeys(upto("evaluate"), "success")
    states |= dict.fromkeys(after("evaluate"), "skipped")
    summary = run(states, {**OUTPUTS, "evaluate": keep})
    assert summary["decision"] == "keep production"
    assert summary["reasons"] == keep.reasons
    assert [summary["steps"][s] for s in after("evaluate")] == ["not run"] * 5
    assert summary["promoted_version"] is None
    # Nobody is asked to approve keeping production.
    assert summary["approval"] == "not run"


@pytest.mark.parametrize(
    "approval",
    [Approval(outcome="rejected", reason="rejected by bob", by="bob"),
     Approval(outcome="rejected", reason="rejected: no answer within 60 minutes", timed_out=True)],
    ids=["rejected", "timed-out"],
)  # fmt: skip
def test_a_rejection_keeps_production_and_says_who(approval):
    states = dict.fromkeys(upto("approve"), "success") | dict.fromkeys(after("approve"), "skipped")
    summary = run(states, {**OUTPUTS, "approve": approval})
    assert summary["decision"] == "forced"  # what the evaluation wanted...
    assert summary["approval"] == to_xcom(approval)  # ...and what a person (or nobody) said
    assert summary["steps"]["approve"] == "passed"
    assert summary["promoted_version"] is None
    assert [summary["steps"][s] for s in after("approve")] == ["not run"] * 4


def test_the_interval_and_drift_are_in_the_summary():
    drifted = dataclasses.replace(
        DECISION, delta_rmse=-0.1, delta_rmse_ci_low=-0.12, delta_rmse_ci_high=-0.08,
        drift_detected=True, drifted_features=["alcohol"],
    )  # fmt: skip
    summary = run(dict.fromkeys(STEPS, "success"), {**OUTPUTS, "evaluate": drifted})
    assert summary["delta_rmse_ci"] == [-0.12, -0.08]
    assert (summary["drift_detected"], summary["drifted_features"]) == (True, ["alcohol"])
    first = run(dict.fromkeys(STEPS, "success"), OUTPUTS)
    assert (first["delta_rmse_ci"], first["drift_detected"]) == (None, False)


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


def test_a_rollback_reports_a_redeploy_error_only_when_there_was_one():
    states = dict.fromkeys(upto("deploy"), "success") | {"canary": "failed", "rollback": "success"}
    assert run(states)["rollback"] == {
        "rolled_back": True,
        "production": "1",
        "served_version": "1",
    }
    failed = Rollback(rolled_back=True, production="1", served_version=None, redeploy_error="down")
    summary = run(states, {**OUTPUTS, "rollback": failed})
    assert summary["rollback"]["redeploy_error"] == "down"
    assert summary["rollback"]["served_version"] is None


@pytest.mark.parametrize("step", STEPS)
def test_every_result_survives_the_xcom_boundary(step):
    import json

    value = to_xcom(OUTPUTS[step])
    assert json.loads(json.dumps(value)) == value
    assert from_xcom(type(OUTPUTS[step]), value) == OUTPUTS[step]


def test_the_summary_reads_what_the_tasks_pushed():
    pushed = {name: to_xcom(result) for name, result in OUTPUTS.items()}
    assert StepResults.from_xcom(pushed) == StepResults(**OUTPUTS)
    assert StepResults.from_xcom(dict.fromkeys(STEPS)) == StepResults()


def test_the_summary_keeps_the_approval_on_the_candidate_version(monkeypatch, tmp_path):
    recorded, notes = [], []
    monkeypatch.setattr(summary_module, "record_approval", lambda **kw: recorded.append(kw))
    monkeypatch.setattr(summary_module, "publish_note", lambda s, **kw: notes.append(s))
    monkeypatch.setattr(summary_module, "served_model", lambda url: SimpleNamespace(version="1"))
    rejected = Approval(outcome="rejected", reason="rejected by bob", by="bob")
    results = dataclasses.replace(StepResults(**OUTPUTS), approve=rejected, promote=None)
    summary = report_run(
        results, {"approve": "success", "promote": "skipped"}, airflow_run_id="manual__1",
        server_url="http://server", tracking_uri="http://mlflow", note_for_dag="wine_retraining",
        summary_file=str(tmp_path / "summary.json"),
    )  # fmt: skip
    assert recorded == [{"tracking_uri": "http://mlflow", "version": "2", "approval": rejected}]
    assert summary["approval"]["reason"] == "rejected by bob"
    assert notes == [summary]
    # Not asked (not better, or a failure before it): nothing to record.
    recorded.clear()
    report_run(
        dataclasses.replace(results, approve=None), {}, airflow_run_id="manual__1",
        server_url="http://server", tracking_uri="http://mlflow",
    )  # fmt: skip
    assert recorded == []
