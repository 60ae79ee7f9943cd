"""`make airflow`: the UI, the REST API and the nightly scheduler on the local stack.

Airflow runs through scripts/airflow.sh exactly as `make airflow` starts it (LocalExecutor on a
SQLite home, API server on loopback), beside the MLflow server and model server of
scripts/stack.sh. Runs are made by the scheduler itself — unpausing, a backfill, the REST API,
an asset event — never by `airflow dags test`, so the task runners' environment (the
model-server token above all) is what a user's scheduler gives them. A person's approval is
answered through the REST API, as the UI's Required Actions page does.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.integration.airflow import AirflowApi, airflow_running, listening_addresses
from tests.integration.harness import wait_for
from tests.integration.stack import Stack, running, stack_env
from wine_quality.core.config import DATA_ASSET_NAME, MODEL_NAME

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_TIMEOUT = 300
# The scheduler's sweep of unanswered approvals (and trigger timeouts) every 5 s, not 15: the
# timed-out approval below then ends within seconds of its deadline.
SWEEP_SECONDS = "5"


@pytest.fixture(scope="module")
def live(tmp_path_factory, wine_csv):
    state = tmp_path_factory.mktemp("airflow-local")
    env = {**stack_env(state), "WINE_DATA_URI": str(wine_csv)}
    with (
        running(Stack(state=state, env=env)) as stack,
        airflow_running(
            stack, AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL=SWEEP_SECONDS
        ) as api,
    ):
        api.wait_for_dag()
        yield stack, api


def _wait_for_run(api: AirflowApi, run_type: str, timeout: float = 60) -> dict:
    """The first run of ``run_type`` the scheduler created, once it exists."""
    found = wait_for(
        lambda: [r for r in api.runs() if r["run_type"] == run_type],
        f"a {run_type} run created by the scheduler", timeout=timeout, every=1, ignore=(),
    )  # fmt: skip
    return found[0]


def test_ui_answers_on_loopback_only(live):
    stack, api = live
    page = requests.get(api.base_url + "/", timeout=30)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert api.get("/monitor/health")["scheduler"]["status"] == "healthy"
    pids = {pid for name, pid in stack.pids().items() if name.startswith("airflow-")}
    assert len(pids) == 4, stack.pids()
    addresses = listening_addresses(pids)
    assert addresses, "the API server listens somewhere"
    assert all(a.startswith("127.0.0.1:") for a in addresses), addresses
    # The log servers (8793, 8794 by default) are off, not bound to every interface.
    assert not [a for a in addresses if a.endswith((":8793", ":8794"))]


def test_the_schedule_is_the_nightly_cron_or_new_data(live, wine_csv):
    _, api = live
    dag = api.get("/dags/wine_retraining")
    # AssetOrTimeSchedule around the 02:00 UTC cron trigger (what "0 2 * * *" always meant).
    assert dag["timetable_summary"] == "Asset or 0 2 * * *"
    assert dag["timetable_description"].startswith("Triggered by assets or At 02:00")
    nightly = datetime.fromisoformat(dag["next_dagrun_run_after"])
    assert (nightly.hour, nightly.minute, nightly.utcoffset()) == (2, 0, timedelta(0))
    # The asset is the data source of this environment (WINE_DATA_URI, a local file).
    asset = api.asset(DATA_ASSET_NAME)
    assert asset["uri"] == wine_csv.resolve().as_uri()
    assert [d["dag_id"] for d in asset["scheduled_dags"]] == ["wine_retraining"]


def _tags(stack: Stack, version: str) -> dict[str, str]:
    return stack.client().get_model_version(MODEL_NAME, version).tags


def _assert_rejected_run(stack: Stack, api: AirflowApi, run_id: str, production: str) -> dict:
    """A rejected promotion: a green run, the release skipped, production and the server kept."""
    done = api.wait_run(run_id, RUN_TIMEOUT)
    assert done["state"] == "success", api.states(run_id)
    states = api.states(run_id)
    assert states["approve"] == "success"
    assert states["promote"] == states["deploy"] == states["canary"] == "skipped"
    assert states["rollback"] == states["watcher"] == "skipped"
    summary = api.xcom(run_id, "report")
    assert summary["decision"] == "forced"
    assert summary["promoted_version"] is None
    assert stack.production() == production == stack.served()["version"]
    note = api.run(run_id)["note"]
    assert note.splitlines()[0] == f"**Decision: forced**, {summary['approval']['reason']}"
    return summary


def test_unpausing_runs_last_night_then_a_backfilled_night_rejected_keeps_production(live):
    stack, api = live
    # catchup=False: unpausing starts the latest missed 02:00 run at once, nothing older.
    api.set_paused(False)
    scheduled = _wait_for_run(api, "scheduled")
    assert scheduled["dag_run_id"].startswith("scheduled__")
    assert scheduled["logical_date"].endswith("T02:00:00Z")
    done = api.wait_run(scheduled["dag_run_id"], RUN_TIMEOUT)
    assert done["state"] == "success", api.states(scheduled["dag_run_id"])
    first = api.xcom(scheduled["dag_run_id"], "report")
    assert first["decision"] == "promote"
    # The decision is the run's note, written by the tasks' own login.
    note = api.run(scheduled["dag_run_id"])["note"]
    assert note.splitlines()[0] == "**Decision: promote**"
    assert all(f"- {reason}" in note for reason in first["reasons"])
    assert first["served_version"] == stack.production() == stack.served()["version"]
    assert len([r for r in api.runs() if r["run_type"] == "scheduled"]) == 1

    # A night the scheduler missed, through a backfill it executes itself, whose promotion (forced,
    # with approval) a person rejects through the REST API: a green run, production kept, and
    # who said no on the candidate version.
    night = datetime.fromisoformat(scheduled["logical_date"]) - timedelta(days=3)
    backfill = api.request(
        "POST",
        "/backfills",
        json={"dag_id": "wine_retraining", "from_date": night.isoformat(),
              "to_date": night.isoformat(),
              "dag_run_conf": {"force_promotion": True, "approval": "always"}},
    )  # fmt: skip
    assert backfill.status_code == 200, backfill.text
    backfilled = _wait_for_run(api, "backfill")
    assert datetime.fromisoformat(backfilled["logical_date"]) == night
    api.wait_for_question(backfilled["dag_run_id"], "approve")
    answered = api.answer(backfilled["dag_run_id"], "approve", "Reject")
    user = answered["responded_by"]["name"]
    assert user == "admin"
    second = _assert_rejected_run(stack, api, backfilled["dag_run_id"], first["served_version"])
    assert second["approval"] == {
        "outcome": "rejected", "reason": f"rejected by {user}", "by": user, "timed_out": False,
    }  # fmt: skip
    tags = _tags(stack, second["candidate_version"])
    assert (tags["approval"], tags["approval_by"]) == ("rejected", user)
    assert tags["approval_reason"] == f"rejected by {user}"


def test_rest_trigger_with_force_promotion_approved_through_rest_is_served(live):
    stack, api = live
    before = stack.versions()
    run_id = api.trigger({"force_promotion": True, "approval": "always"})
    question = api.wait_for_question(run_id, "approve")
    candidate = api.xcom(run_id, "train")["version"]
    assert question["subject"] == f"Promote {MODEL_NAME} version {candidate} to production?"
    assert question["options"] == ["Approve", "Reject"]
    assert question["defaults"] == ["Reject"]
    assert "production (forced)" in question["body"]
    assert "approval is 'always'" in question["body"]
    # Nothing moves while the question is open.
    assert stack.production() != candidate
    answered = api.answer(run_id, "approve", "Approve")
    done = api.wait_run(run_id, RUN_TIMEOUT)
    assert done["state"] == "success", api.states(run_id)
    summary = api.xcom(run_id, "report")
    assert summary["decision"] == "forced"
    assert api.run(run_id)["note"].startswith(
        f"**Decision: forced**, approved by {answered['responded_by']['name']}"
    )
    assert summary["approval"]["outcome"] == "approved"
    new = summary["promoted_version"]
    assert new == candidate
    assert _tags(stack, new)["approval"] == "approved"
    assert _tags(stack, new)["approval_by"] == answered["responded_by"]["name"] == "admin"
    assert new not in before
    assert new in stack.versions()
    # Deploy needs the model server's token: the scheduler's task runners have it.
    assert stack.production() == new == stack.served()["version"] == summary["served_version"]
    assert summary["canary"]["passed"] is True
    tis = api.task_instances(run_id)
    assert {t["task_id"] for t in tis if t["state"] == "success"} >= {"deploy", "canary"}


def test_an_unanswered_promotion_is_rejected_when_its_time_is_up(live):
    stack, api = live
    production = stack.production()
    # 0.1 minutes: the scheduler's sweep answers with the default (Reject) about 6 s after the
    # question is asked, give or take one sweep.
    run_id = api.trigger(
        {"force_promotion": True, "approval": "always", "approval_timeout_minutes": 0.1}
    )
    api.wait_for_question(run_id, "approve")
    summary = _assert_rejected_run(stack, api, run_id, production)
    assert summary["approval"] == {
        "outcome": "rejected", "reason": "rejected: no answer within 0.1 minutes",
        "timed_out": True,
    }  # fmt: skip
    tags = _tags(stack, summary["candidate_version"])
    assert tags["approval"] == "rejected"
    assert tags["approval_reason"] == "rejected: no answer within 0.1 minutes"
    assert "approval_by" not in tags
    detail = api.get(api.hitl_path(run_id, "approve"))
    assert detail["chosen_options"] == ["Reject"]
    assert detail["responded_by_user"] is None


def test_an_asset_event_starts_a_run_that_reads_the_data_it_names(live, wine_csv, tmp_path):
    stack, api = live
    production = stack.production()
    api.set_paused(False)  # already, after the unpausing test; asset events need it
    # New data lands under another name (here the same rows, so production is kept).
    landed = tmp_path / "incoming" / "winequality-red-2026-11-29.csv"
    landed.parent.mkdir()
    shutil.copyfile(wine_csv, landed)
    asset = api.asset(DATA_ASSET_NAME)
    event = api.post("/assets/events", json={"asset_id": asset["id"],
                                             "extra": {"data_uri": str(landed)}})  # fmt: skip
    assert event["extra"]["data_uri"] == str(landed)
    started = _wait_for_run(api, "asset_triggered", timeout=120)
    assert started["dag_run_id"].startswith("asset_triggered__")
    done = api.wait_run(started["dag_run_id"], RUN_TIMEOUT)
    assert done["state"] == "success", api.states(started["dag_run_id"])
    assert api.xcom(started["dag_run_id"], "ingest")["source_uri"] == str(landed)
    # The same rows as production's: the same model, which is not better, so production stays;
    # the approval step is never reached, so nobody is asked.
    summary = api.xcom(started["dag_run_id"], "report")
    assert summary["rows"] == 1599
    assert summary["decision"] == "keep production"
    assert summary["promoted_version"] is None
    assert summary["approval"] == "not run"
    assert stack.production() == production == stack.served()["version"]
    states = api.states(started["dag_run_id"])
    release = ("approve", "promote", "deploy", "canary")
    assert [states[t] for t in release] == ["skipped"] * 4, states


def test_unknown_conf_key_fails_the_run_at_once_naming_it(live):
    stack, api = live
    before = stack.versions()
    started = datetime.now(UTC)
    run_id = api.trigger({"max_rsme": 0.7})
    done = api.wait_run(run_id, 120)
    assert done["state"] == "failed"
    assert (datetime.now(UTC) - started).total_seconds() < 90
    failed = [t for t in api.task_instances(run_id) if t["state"] == "failed"]
    assert failed
    logs = "".join(
        json.dumps(
            api.get(
                f"/dags/wine_retraining/dagRuns/{run_id}/taskInstances/{t['task_id']}/logs/"
                f"{t['try_number']}",
                params={"full_content": True},
            )
        )
        for t in failed
    )
    assert "max_rsme" in logs
    assert "max_rmse" in logs  # the valid keys are listed
    # Nothing was trained or registered.
    assert stack.versions() == before
    assert all(t["try_number"] <= 1 for t in failed)
