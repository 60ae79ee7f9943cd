"""The run summary people read: the decision, its reasons and what each step did.

Folded from each step's result and final task state; written to the log, the ``Summary``
task's return value and, when asked for, a JSON file (``make run`` prints that file). Its keys
are read by people, tests and scripts: change them only on purpose.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from wine_quality.core.handoff import from_xcom, to_xcom
from wine_quality.data.ingest import IngestResult
from wine_quality.gate.evaluate import Decision, outcome
from wine_quality.model.train import Candidate
from wine_quality.release.approval import Approval, record_approval
from wine_quality.release.canary import CanaryReport
from wine_quality.release.deploy import Deployment, Rollback, served_model
from wine_quality.release.registry import Promotion
from wine_quality.report.note import publish_note
from wine_quality.validation.run import ValidationRun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepResults:
    """Each step's result (the DAG's task ids, in the order they run); None when it gave none."""

    ingest: IngestResult | None = None
    validate: ValidationRun | None = None
    train: Candidate | None = None
    evaluate: Decision | None = None
    approve: Approval | None = None
    promote: Promotion | None = None
    deploy: Deployment | None = None
    canary: CanaryReport | None = None
    rollback: Rollback | None = None

    @classmethod
    def from_xcom(cls, values: Mapping[str, Mapping[str, Any] | None]) -> StepResults:
        """The results from each step's XCom value (missing or None: the step gave none)."""
        return cls(
            **{
                name: from_xcom(kind, values[name]) if values.get(name) else None
                for name, kind in _RESULT_TYPES.items()
            }
        )


_RESULT_TYPES: dict[str, type] = {
    "ingest": IngestResult,
    "validate": ValidationRun,
    "train": Candidate,
    "evaluate": Decision,
    "approve": Approval,
    "promote": Promotion,
    "deploy": Deployment,
    "canary": CanaryReport,
    "rollback": Rollback,
}

# The steps a summary reports on, in the order they run (the DAG's task ids).
STEPS: tuple[str, ...] = tuple(spec.name for spec in fields(StepResults))


def step_status(state: str | None) -> str:
    """What a step's final task state means to a person: passed, failed or not run.

    A skipped step (nothing to promote, nothing to roll back) and one whose upstream failed
    both did not run; only a step that ran and raised failed.
    """
    if state == "success":
        return "passed"
    if state == "failed":
        return "failed"
    return "not run"


def summarize(
    results: StepResults, states: Mapping[str, str | None], *, airflow_run_id: str
) -> dict[str, Any]:
    """Fold the steps' results and final states into the run summary people read.

    Args:
        results: Each step's result, None when it gave none.
        states: Each step's final task state (``success``, ``failed``, ``skipped``,
            ``upstream_failed``; missing or None when it never ran).
        airflow_run_id: The orchestrator's id of this run.
    """
    steps = {name: step_status(states.get(name)) for name in STEPS}
    ingested, candidate, decision = results.ingest, results.train, results.evaluate
    canary, rollback = results.canary, results.rollback
    return {
        "airflow_run_id": airflow_run_id,
        "decision": outcome(decision.promote, decision.forced) if decision else "not made",
        "reasons": decision.reasons if decision else None,
        # Only a promotion the evaluation wanted comes to the approval step.
        "approval": to_xcom(results.approve) if results.approve else steps["approve"],
        "rows": ingested.rows if ingested else None,
        "data_sha256": ingested.sha256 if ingested else None,
        "validation": steps["validate"],
        "candidate_version": candidate.version if candidate else None,
        "candidate_metrics": decision.candidate_metrics if decision else None,
        "production_version_before": decision.production_version if decision else None,
        "production_metrics": decision.production_metrics if decision else None,
        # The interval the gate read, and whether the data moved away from production's.
        "delta_rmse_ci": (
            [decision.delta_rmse_ci_low, decision.delta_rmse_ci_high]
            if decision and decision.delta_rmse_ci_low is not None
            else None
        ),
        "drift_detected": decision.drift_detected if decision else None,
        "drifted_features": decision.drifted_features if decision else None,
        "promoted_version": results.promote.version if results.promote else None,
        "served_version": (results.deploy.version if results.deploy else None)
        or (rollback.served_version if rollback else None),
        "canary": (
            {"passed": True, "p95_ms": canary.p95_ms, "rows": canary.rows}
            if steps["canary"] == "passed" and canary
            else steps["canary"]
        ),
        "rollback": (
            to_xcom(rollback) if steps["rollback"] == "passed" and rollback else steps["rollback"]
        ),
        "steps": steps,
    }


def report_run(
    results: StepResults,
    states: Mapping[str, str | None],
    *,
    airflow_run_id: str,
    server_url: str,
    tracking_uri: str | None = None,
    summary_file: str | None = None,
    note_for_dag: str | None = None,
) -> dict[str, Any]:
    """The run summary, with what the endpoint serves right now (asked, not assumed).

    Logged as indented JSON, written to ``summary_file`` when one is given, and, given the
    run's DAG id, written as the run's note (the decision where a person looks first). Given
    the tracking server, the approval's outcome is kept on the candidate's model version.
    """
    if tracking_uri and results.approve and results.train:
        record_approval(
            tracking_uri=tracking_uri, version=results.train.version, approval=results.approve
        )
    summary = summarize(results, states, airflow_run_id=airflow_run_id)
    try:
        summary["served_version"] = served_model(server_url).version
    except Exception as exc:  # noqa: BLE001 - a summary must not fail on an unreachable server
        summary["served_version"] = f"unknown: model server unreachable ({type(exc).__name__})"
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    log.info("run summary:\n%s", text)
    if summary_file:
        with open(summary_file, "w") as handle:
            handle.write(text)
    if note_for_dag:
        publish_note(summary, dag_id=note_for_dag, run_id=airflow_run_id)
    return summary
