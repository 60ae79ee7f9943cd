"""The DAG end to end with `airflow dags test` against the live local stack.

Order matters and is the story of a production model's life: the first run promotes version 1;
a rerun on the same data trains an identical model and must not promote; bad data is stopped
before the registry; a forced promotion that fails its canary is rolled back.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.data.corpus import CORPUS, DAG_LEVEL
from tests.integration.stack import assert_first_run_promoted, task_attempts
from tests.reliability import record
from wine_quality.core.config import MODEL_NAME, PREVIOUS_ALIAS, RUNBOOK_PAYLOAD
from wine_quality.data.holdout import load_holdout, row_groups
from wine_quality.model.lineage import version_training_data

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def first_run(stack, wine_csv):
    return stack.run_dag(str(wine_csv))


def test_first_run_promotes_version_1_and_the_canary_passes(stack, first_run):
    assert_first_run_promoted(stack, *first_run)


def test_runbook_curl_payload_gets_one_prediction(stack, first_run):
    response = requests.post(f"{stack.server_url}/invocations", json=RUNBOOK_PAYLOAD, timeout=10)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 1
    assert 3.0 < predictions[0] < 8.0
    assert response.headers["X-Model-Version"] == "1"


def test_version_1_is_traceable_to_its_data(stack, first_run, wine_csv):
    import hashlib

    version = stack.client().get_model_version(MODEL_NAME, "1")
    assert version.tags["data_sha256"] == hashlib.sha256(wine_csv.read_bytes()).hexdigest()
    assert version.tags["airflow_dag_id"] == "wine_retraining"
    assert version.tags["decision"] == "promote"
    run = stack.client().get_run(version.run_id)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"winequality-red", "holdout"}
    # The runbook's stage URI follows the alias.
    assert stack.client().get_latest_versions(MODEL_NAME, stages=["Production"])[0].version == "1"


def test_rerun_on_same_data_does_not_promote(stack, first_run, wine_csv):
    code, summary, output = stack.run_dag(str(wine_csv))
    assert code == 0, output[-3000:]
    assert summary["decision"] == "keep production"
    assert summary["candidate_version"] == "2"
    assert summary["production_version_before"] == "1"
    assert summary["candidate_metrics"] == summary["production_metrics"]  # same model, same rows
    assert summary["promoted_version"] is None
    assert summary["served_version"] == "1"
    assert stack.production() == "1"
    assert stack.served()["version"] == "1"
    tags = stack.client().get_model_version(MODEL_NAME, "2").tags
    assert tags["decision"] == "keep_production"
    # The same model on the same rows: a zero-width interval at zero, which is not "better".
    assert (tags["delta_rmse_ci_low"], tags["delta_rmse_ci_high"]) == ("0.000000", "0.000000")
    assert (tags["ci_level"], tags["bootstrap_resamples"]) == ("0.95", "2000")
    assert tags["drift_detected"] == "false"
    # Production was never scored on a row it was trained on, checked through its lineage: the
    # rows that trained version 1 (rebuilt from its tags) and version 2's holdout are disjoint.
    _, trained_on = version_training_data(stack.client(), "1")
    run_id = stack.client().get_model_version(MODEL_NAME, "2").run_id
    holdout = load_holdout(f"runs:/{run_id}/holdout/holdout.csv", stack.tracking_uri)
    assert len(trained_on) + len(holdout) == 1599
    assert not set(row_groups(holdout)) & set(row_groups(trained_on))


@pytest.mark.parametrize("kind", [*DAG_LEVEL, "missing-source"])
def test_broken_data_fails_the_run_and_changes_nothing(stack, first_run, wine_csv, tmp_path, kind):
    before = stack.versions()
    source = tmp_path / "broken.csv"
    if kind == "missing-source":
        error, expect = "DataSourceError", ("does not exist",)
    else:
        case = next(c for c in CORPUS if c.kind == kind)
        source.write_bytes(case.mutate(wine_csv.read_bytes()))
        error, expect = DAG_LEVEL[kind], case.expect
    started = time.monotonic()
    code, summary, output = stack.run_dag(str(source))
    elapsed = time.monotonic() - started
    assert code != 0
    assert error in output
    for words in expect:
        assert words in output, f"{kind}: {words!r} not in the run's output"
    # Bad values fail validation; a source that cannot be read fails before it.
    assert summary["validation"] == ("failed" if error == "DataValidationError" else "not run")
    assert summary["steps"]["train"] == "not run"
    assert summary["candidate_version"] is None
    assert stack.versions() == before
    assert stack.production() == "1"
    assert stack.served()["version"] == "1"
    # A gate failure fails at once: the failing task ran once (no retry), training never ran.
    failing = "ingest" if error == "DataSourceError" else "validate"
    assert task_attempts(output, failing) == 1
    assert task_attempts(output, "train") == 0
    assert elapsed < 120, f"the run took {elapsed:.0f} s: was a gate failure retried?"
    record(
        "bad data through the DAG", kind, f"`airflow dags test` on a source with: {kind}",
        f"run failed (exit {code}) in {elapsed:.0f} s at ingest/validate; nothing downstream ran",
        f"output names {', '.join(map(repr, expect))}; versions {before} unchanged; "
        "production and served version still 1",
    )  # fmt: skip


def test_failed_canary_rolls_back(stack, first_run, wine_csv):
    # Forced promotion with an impossible latency budget: the canary must fail and undo it.
    code, summary, output = stack.run_dag(
        str(wine_csv), conf={"force_promotion": True, "canary_p95_ms": 0.001}
    )
    assert code != 0
    assert "CanaryError" in output
    assert "exceeds the budget" in output
    forced = summary["promoted_version"]
    assert forced not in (None, "1")
    assert summary["rollback"]["rolled_back"] is True
    assert summary["rollback"]["production"] == "1"
    assert stack.production() == "1"
    assert stack.served()["version"] == "1"
    tags = stack.client().get_model_version(MODEL_NAME, forced).tags
    assert tags["forced_promotion"] == "true"
    assert "rollback_reason" in tags
    assert stack.client().get_model_version_by_alias(MODEL_NAME, PREVIOUS_ALIAS).version == "1"


def test_reload_token_never_appears_in_task_logs(stack, first_run):
    token = stack.script("stack.sh", "token").stdout.strip()
    assert len(token) >= 32
    logs = "".join(p.read_text() for p in (stack.state / "logs").glob("dags-test-*.log"))
    assert "wine_retraining" in logs  # the logs were captured
    assert token not in logs
    assert token not in first_run[2]


def test_local_services_listen_on_loopback_only(stack, first_run):
    import psutil

    listening = []
    for pid in stack.pids().values():
        process = psutil.Process(pid)
        for member in [process, *process.children(recursive=True)]:
            listening += [
                c.laddr.ip for c in member.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN
            ]  # fmt: skip
    assert listening, "found no listening sockets: the check would prove nothing"
    assert set(listening) == {"127.0.0.1"}


def test_a_run_on_shifted_wine_reports_drift_in_alcohol_with_its_evidence(
    stack, first_run, wine_csv, tmp_path
):
    """The issue's scenario: the shipped file, then a copy with 2 % vol more alcohol."""
    import json

    import pandas as pd

    shifted = pd.read_csv(wine_csv, sep=";")
    shifted["alcohol"] = shifted["alcohol"] + 2.0
    source = tmp_path / "winequality-red-alcohol+2.csv"
    shifted.to_csv(source, sep=";", index=False)
    production_before = stack.production()

    code, summary, output = stack.run_dag(str(source))
    assert code == 0, output[-3000:]
    client = stack.client()
    version = client.get_model_version(MODEL_NAME, summary["candidate_version"])
    assert version.tags["drift_detected"] == "true"
    assert version.tags["drifted_features"] == "alcohol"
    run = client.get_run(version.run_id)
    artifact = f"decision/decision-v{version.version}.json"
    decision = json.loads(
        Path(client.download_artifacts(run.info.run_id, artifact, str(tmp_path))).read_text()
    )
    assert decision["drift_detected"] is True
    assert decision["drifted_features"] == ["alcohol"]
    assert decision["production_version"] == production_before
    assert decision["delta_rmse_ci_low"] <= decision["delta_rmse"] <= decision["delta_rmse_ci_high"]
    assert any(reason.startswith("alcohol drifted") for reason in decision["reasons"])
    assert run.data.metrics["drift_detected"] == 1.0
    assert run.data.metrics["drift_psi_alcohol"] >= decision["policy"]["drift_psi"]
    plots = {f.path for f in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {
        "plots/predictions.png", "plots/coefficients.png", "plots/delta_rmse_bootstrap.png",
        "plots/drift.png",
    }  # fmt: skip
    validation = client.search_runs(
        [run.info.experiment_id],
        f"tags.stage = 'validate' and tags.airflow_run_id = '{version.tags['airflow_run_id']}'",
    )[0]
    assert {f.path for f in client.list_artifacts(validation.info.run_id, "validation")} >= {
        "validation/validation_result.json", "validation/validation_result.html",
    }  # fmt: skip
    assert "Drift against production's training data**: detected in alcohol" in (
        version.description
    )
    assert decision["holdout_overlap_rows"] == 0
