"""Faults injected into the real processes, each followed by a consistency check.

The tests share one live stack and build on each other's state, in file order: the first run
promotes version 1; then the tracking server is cut while training logs, the train task
"crashes" between registering and promoting, the model server is down when a forced promotion
is deployed, and a canary fails. Last, on a second stack whose MLflow server keeps artifacts in
S3 (moto), the S3 endpoint goes away while training uploads. After each fault
:func:`assert_consistent` checks that the registry, the legacy stage, the model server and the
training runs still tell one story.

Each passing case records a row (``tests/reliability.py``): the source of docs/reliability.md.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
import time
import warnings
from urllib.parse import urlparse

import pytest
import requests

from tests import reliability
from tests.integration.harness import pid_alive, wait_for
from tests.integration.proxy import CuttableProxy
from tests.integration.services import start_s3
from tests.integration.stack import Stack, running, stack_env, task_attempts
from wine_quality.core import config
from wine_quality.core.config import (
    FEATURES,
    LEGACY_STAGE,
    MODEL_NAME,
    PREDICTION_TOLERANCE,
    PREVIOUS_ALIAS,
    RUNBOOK_PAYLOAD,
    Settings,
    model_uri,
)
from wine_quality.core.errors import PipelineGateError
from wine_quality.core.tracking import using
from wine_quality.data.ingest import IngestResult, ingest
from wine_quality.gate.evaluate import PromotionPolicy, compare_with_production
from wine_quality.model.train import Candidate, train_from_snapshot
from wine_quality.release.canary import run_canary
from wine_quality.release.deploy import deploy
from wine_quality.release.registry import LOCK_NAME, Promotion, promote

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID = "wine_retraining"
# Generous: two cores shared with other test runs.
SERVED_DEADLINE_SECONDS = 120.0


def one_line(error: BaseException, limit: int = 160) -> str:
    """The error's message on one line, without this run's ports (rows must read the same)."""
    text = " ".join(str(error).split())
    text = re.sub(r"http://127\.0\.0\.1:\d+", "", text)
    text = re.sub(r"\(host='127\.0\.0\.1', port=\d+\)", "", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def record(*, case: str, broken: str, system_did: str, checked_after: str) -> None:
    reliability.record("faults", case, broken, system_did, checked_after)


# --- a TCP forwarder that can be cut -----------------------------------------------------------


def model_artifact_upload(data: bytes) -> bool:
    """The first upload of a file of the logged model (``…/models/m-<id>/artifacts/…``)."""
    return re.match(rb"PUT /api/2\.0/mlflow-artifacts/artifacts/\S*/models/m-", data) is not None


# --- helpers -----------------------------------------------------------------------------------


def experiment_ids(mlflow_client) -> list[str]:
    return [e.experiment_id for e in mlflow_client.search_experiments()]


def train_runs(mlflow_client, airflow_run_id: str) -> list:
    return mlflow_client.search_runs(
        experiment_ids(mlflow_client),
        filter_string=f"tags.airflow_run_id = '{airflow_run_id}' and tags.stage = 'train'",
    )


def served_version(stack) -> str | None:
    version = stack.served()["version"]
    return None if version is None else str(version)


def assert_consistent(stack) -> str | None:
    """Check that registry, legacy stage, model server and training runs tell one story.

    - the ``production`` alias, the ``Production`` stage and ``/served-model`` name the same
      version (or all name none);
    - the promotion lock is not left behind;
    - every version has exactly one FINISHED training run with its ``airflow_run_id`` (the
      run it was registered from), and no two versions share an ``airflow_run_id``;
    - production's model loads with ``mlflow.pyfunc`` and predicts the runbook payload, and the
      server answers the same payload with the same number.

    Returns:
        The production version (None if production is not set).
    """
    import mlflow
    import pandas as pd

    mlflow_client = stack.client()
    alias = stack.production()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        staged = mlflow_client.get_latest_versions(MODEL_NAME, stages=[LEGACY_STAGE])
    served = served_version(stack)
    assert [str(v.version) for v in staged] == ([alias] if alias else []), (alias, staged)
    assert served == alias, f"model server serves {served}, production is {alias}"

    assert not mlflow_client.search_registered_models(filter_string=f"name = '{LOCK_NAME}'"), (
        "the promotion lock was left behind"
    )

    registered = mlflow_client.search_model_versions(f"name = '{MODEL_NAME}'")
    per_run = collections.Counter(v.tags.get("airflow_run_id") for v in registered)
    assert all(count == 1 for count in per_run.values()), f"duplicate registrations: {per_run}"
    for version in registered:
        run_id_tag = version.tags.get("airflow_run_id")
        assert run_id_tag, f"version {version.version} has no airflow_run_id tag"
        finished = [r for r in train_runs(mlflow_client, run_id_tag) if r.info.status == "FINISHED"]
        assert [r.info.run_id for r in finished] == [version.run_id], (
            f"version {version.version} ({run_id_tag}): FINISHED train runs"
            f" {[r.info.run_id for r in finished]}, registered from {version.run_id}"
        )

    if alias is not None:
        frame = pd.DataFrame(RUNBOOK_PAYLOAD["dataframe_split"]["data"], columns=list(FEATURES))
        with using(stack.tracking_uri):
            offline = mlflow.pyfunc.load_model(model_uri(alias)).predict(frame)
        assert len(offline) == 1, offline
        assert math.isfinite(float(offline[0])), offline
        live = requests.post(f"{stack.server_url}/invocations", json=RUNBOOK_PAYLOAD, timeout=30)
        assert live.status_code == 200, live.text[:500]
        assert live.headers["X-Model-Version"] == alias
        (prediction,) = live.json()["predictions"]
        assert abs(prediction - float(offline[0])) <= PREDICTION_TOLERANCE
    return alias


@pytest.fixture(scope="module")
def settings(stack, wine_csv, tmp_path_factory) -> Settings:
    """What the DAG's tasks get from the environment, for calling their functions directly."""
    token = stack.script("stack.sh", "token", timeout=60)
    assert token.returncode == 0, token.stderr
    return Settings(
        tracking_uri=stack.tracking_uri,
        model_server_url=stack.server_url,
        model_server_token=token.stdout.strip(),
        data_uri=str(wine_csv),
        staging_uri=str(tmp_path_factory.mktemp("staging")),
    )


@pytest.fixture(scope="module")
def ingested(settings) -> IngestResult:
    return ingest(settings.data_uri, settings.staging_uri, "faults")


def train(settings: Settings, ingested: IngestResult, airflow_run_id: str) -> Candidate:
    """The train task's function, as the task calls it."""
    return train_from_snapshot(
        ingested,
        tracking_uri=settings.tracking_uri,
        experiment_name=config.EXPERIMENT_NAME,
        alphas=config.DEFAULT_ALPHAS,
        l1_ratios=config.DEFAULT_L1_RATIOS,
        dag_id=DAG_ID,
        airflow_run_id=airflow_run_id,
    )


# --- the cases, in order -----------------------------------------------------------------------


def test_first_run_promotes_version_1(stack, wine_csv):
    code, summary, output = stack.run_dag(str(wine_csv))
    assert code == 0, output[-3000:]
    assert summary["promoted_version"] == "1"
    assert assert_consistent(stack) == "1"


def test_tracking_server_cut_while_training_logs(stack, settings, ingested, monkeypatch):
    before = stack.production()
    proxy = CuttableProxy(urlparse(stack.tracking_uri).port, cut_when=model_artifact_upload)
    proxy.start()
    through_proxy = dataclasses.replace(settings, tracking_uri=proxy.url)
    airflow_run_id = "faults__tracking_server_cut"
    # No client-side retries and a short timeout: the fault surfaces at once, as in a task.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    started = time.monotonic()
    try:
        with pytest.raises(Exception) as failure:  # noqa: PT011 - the type is checked below
            train(through_proxy, ingested, airflow_run_id)
        failed_after = time.monotonic() - started
        assert proxy.is_cut, "training ended before the proxy was cut"
        assert not isinstance(failure.value, PipelineGateError), failure.value
        # The attempt died mid-run: its run is left RUNNING and nothing was registered.
        abandoned = train_runs(stack.client(), airflow_run_id)
        assert [r.info.status for r in abandoned] == ["RUNNING"], abandoned
        stack_versions = stack.client().search_model_versions(
            f"name = '{MODEL_NAME}' and tags.airflow_run_id = '{airflow_run_id}'"
        )
        assert stack_versions == []

        # Airflow's retry: the server is reachable again, same airflow_run_id, fresh settings.
        proxy.start()
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT")
        retried = train(through_proxy, ingested, airflow_run_id)
    finally:
        proxy.cut()

    mlflow_client = stack.client()
    tagged = mlflow_client.search_model_versions(
        f"name = '{MODEL_NAME}' and tags.airflow_run_id = '{airflow_run_id}'"
    )
    assert [str(v.version) for v in tagged] == [retried.version]
    assert retried.reused is False
    runs = {r.info.run_id: r.info.status for r in train_runs(mlflow_client, airflow_run_id)}
    assert runs == {abandoned[0].info.run_id: "FAILED", retried.run_id: "FINISHED"}
    assert stack.production() == before
    assert assert_consistent(stack) == before
    record(
        case="tracking-server-cut-while-training",
        broken=(
            "TCP path to the tracking server cut at the first upload of a logged-model file"
            f" (`{re.sub(r'm-[0-9a-f]+', 'm-<id>', proxy.cut_at.split(' HTTP')[0])}`),"
            " no client retries"
        ),
        system_did=(
            f"train failed after {failed_after:.0f} s with {type(failure.value).__name__}"
            f" ({one_line(failure.value)}), transient so Airflow retries it; the retry closed"
            " the abandoned run as FAILED,"
            f" trained again and registered version {retried.version}"
        ),
        checked_after=(
            "one version and one FINISHED train run carry the airflow_run_id; abandoned run"
            f" FAILED; production unchanged ({before}); alias, stage and server agree"
        ),
    )


def test_crash_between_registering_and_promoting(stack, settings, ingested):
    before_versions = stack.versions()
    before = stack.production()
    airflow_run_id = "faults__crash_before_promote"
    first = train(settings, ingested, airflow_run_id)
    # The crash: the task's result is lost and nothing downstream runs.
    assert stack.versions() == [*before_versions, first.version]
    assert stack.production() == before

    retried = train(settings, ingested, airflow_run_id)
    assert retried.reused is True
    assert (retried.version, retried.run_id) == (first.version, first.run_id)
    assert stack.versions() == [*before_versions, first.version]

    # The rest of the run. Forced, so that the promotion path is exercised whatever the rule
    # would say about a model trained on the same data.
    decision = compare_with_production(
        tracking_uri=settings.tracking_uri,
        experiment_name=config.EXPERIMENT_NAME,
        candidate=retried,
        policy=PromotionPolicy(
            max_rmse=config.DEFAULT_MAX_RMSE,
            min_r2=config.DEFAULT_MIN_R2,
            min_improvement=config.DEFAULT_MIN_IMPROVEMENT,
            force=True,
        ),
        airflow_run_id=airflow_run_id,
    )
    assert (decision.candidate_version, decision.production_version) == (first.version, before)

    def promote_it() -> Promotion:
        return promote(
            tracking_uri=settings.tracking_uri,
            version=decision.candidate_version,
            expected_production=decision.production_version,
            airflow_run_id=airflow_run_id,
            forced=decision.forced,
        )

    promotion = promote_it()
    assert promotion == Promotion(
        version=first.version, previous_version=before, already_promoted=False
    )
    # A retry of the promote task changes nothing.
    assert promote_it().already_promoted is True
    deployed = deploy(
        server_url=settings.model_server_url,
        token=settings.model_server_token,
        expected_version=promotion.version,
    )
    assert str(deployed.version) == first.version
    canary = run_canary(
        tracking_uri=settings.tracking_uri,
        server_url=settings.model_server_url,
        version=promotion.version,
        holdout_uri=retried.holdout_uri,
        sample_rows=config.DEFAULT_CANARY_ROWS,
        p95_budget_ms=10_000.0,  # correctness is the point here, not a shared machine's latency
    )
    assert canary.passed is True

    assert stack.versions() == [*before_versions, first.version]
    assert assert_consistent(stack) == first.version
    record(
        case="crash-between-register-and-promote",
        broken="the train task's result was lost after it registered a version; task retried",
        system_did=(
            f"the retry found version {first.version} by its airflow_run_id tag and returned"
            " it without training or registering again; evaluate, promote (twice: the second"
            " is a no-op), deploy and canary then completed"
        ),
        checked_after=(
            f"no new version; production {before} -> {first.version}; alias, stage and"
            " server agree; lock released"
        ),
    )


def test_model_server_down_at_deploy(stack, wine_csv):
    before = stack.production()
    assert before is not None
    stopped = stack.script("stack.sh", "stop", "model-server", timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    with pytest.raises(requests.ConnectionError):
        stack.served()

    started = time.monotonic()
    code, summary, output = stack.run_dag(str(wine_csv), conf={"force_promotion": True})
    took = time.monotonic() - started
    assert code != 0, output[-3000:]
    forced = summary["promoted_version"]
    assert forced not in (None, before)
    assert summary["rollback"]["rolled_back"] is True
    assert summary["rollback"]["production"] == before
    # Why, in the summary: the redeploy after the rollback could not reach the server either.
    assert summary["rollback"]["served_version"] is None
    assert "Connection refused" in summary["rollback"]["redeploy_error"]
    assert summary["served_version"].startswith("unknown: model server unreachable")
    assert "Connection refused" in output
    # Retried as a transient error (2 retries), then rolled back once; no canary ran.
    attempts = {t: task_attempts(output, t) for t in ("deploy", "canary", "rollback")}
    assert attempts == {"deploy": 3, "canary": 0, "rollback": 1}, attempts
    assert stack.production() == before
    tags = stack.client().get_model_version(MODEL_NAME, forced).tags
    assert tags["forced_promotion"] == "true"
    assert "deploy or canary failed" in tags["rollback_reason"]

    restarted = stack.script("stack.sh", "up", timeout=300)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    wait_for(
        lambda: served_version(stack) == before,
        f"version {before} on /served-model",
        timeout=SERVED_DEADLINE_SECONDS,
        every=0.5,
    )
    assert assert_consistent(stack) == before
    record(
        case="model-server-down-at-deploy",
        broken="model server stopped (`stack.sh stop model-server`) before a forced promotion",
        system_did=(
            f"promote moved production {before} -> {forced}; deploy failed with connection"
            " refused on every attempt (3, with back-off); rollback restored production to"
            f" {before} and reported that the redeploy could not reach the server; run exited"
            f" non-zero after {took:.0f} s"
        ),
        checked_after=(
            f"after `stack.sh up` the restarted server loads @production and serves {before};"
            " alias, stage and server agree; forced version tagged with the rollback reason"
        ),
    )


def test_failed_canary_rolls_back(stack, wine_csv):
    before = stack.production()
    assert before is not None
    code, summary, output = stack.run_dag(
        str(wine_csv), conf={"force_promotion": True, "canary_p95_ms": 0.001}
    )
    assert code != 0, output[-3000:]
    assert "CanaryError" in output
    assert "exceeds the budget" in output
    forced = summary["promoted_version"]
    assert forced not in (None, before)
    # A gate failure: no retries.
    attempts = {t: task_attempts(output, t) for t in ("deploy", "canary", "rollback")}
    assert attempts == {"deploy": 1, "canary": 1, "rollback": 1}, attempts
    assert summary["rollback"] == {
        "rolled_back": True,
        "production": before,
        "served_version": before,
    }
    assert stack.production() == before
    assert served_version(stack) == before
    assert stack.client().get_model_version_by_alias(MODEL_NAME, PREVIOUS_ALIAS).version == before
    assert assert_consistent(stack) == before
    record(
        case="failed-canary",
        broken="forced promotion with an impossible p95 latency budget (0.001 ms)",
        system_did=(
            f"canary raised CanaryError (p95 exceeds the budget) for version {forced}; the task"
            f" failed at once (no retries); rollback restored production to {before} and the"
            " server reloaded it; run exited non-zero"
        ),
        checked_after=f"production and served version back to {before}; alias, stage, server agree",
    )


# --- S3 behind the tracking server -------------------------------------------------------------

ARTIFACT_BUCKET, ARTIFACT_PREFIX = "mlflow", "mlartifacts"


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory):
    """A second stack (scripts/stack.sh) whose MLflow server keeps artifacts in moto's S3.

    Yields ``(stack, holder)``: ``holder["s3"]`` is the S3 server currently running (a test
    may replace it), ``holder["log_dir"]`` where moto logs.
    """
    log_dir = tmp_path_factory.mktemp("moto")
    holder = {"s3": start_s3(log_dir), "log_dir": log_dir}
    state = tmp_path_factory.mktemp("s3-stack")
    env = stack_env(state)
    env.update(
        ARTIFACT_ROOT=f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_PREFIX}",
        MLFLOW_S3_ENDPOINT_URL=holder["s3"].endpoint,
        AWS_ACCESS_KEY_ID="faults-mlflow-key",
        AWS_SECRET_ACCESS_KEY="faults-mlflow-secret",
    )
    try:
        with running(Stack(state=state, env=env), up_timeout=240) as live:
            yield live, holder
    finally:
        holder["s3"].stop()
        assert not pid_alive(holder["s3"].process.pid)


def test_s3_unreachable_during_artifact_upload(s3_stack, settings, ingested, monkeypatch):
    import mlflow
    import pandas as pd

    stack, holder = s3_stack
    on_s3 = dataclasses.replace(
        settings, tracking_uri=stack.tracking_uri, model_server_url=stack.server_url
    )
    airflow_run_id = "faults__s3_unreachable"
    holder["s3"].stop()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    started = time.monotonic()
    with pytest.raises(Exception) as failure:  # noqa: PT011 - the type is checked below
        train(on_s3, ingested, airflow_run_id)
    failed_after = time.monotonic() - started
    assert not isinstance(failure.value, PipelineGateError), failure.value
    mlflow_client = stack.client()
    first = train_runs(mlflow_client, airflow_run_id)
    assert len(first) == 1, first
    assert first[0].info.status in ("FAILED", "RUNNING"), first[0].info
    assert stack.versions() == []

    holder["s3"] = start_s3(holder["log_dir"], port=holder["s3"].port)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT")
    retried = train(on_s3, ingested, airflow_run_id)

    assert retried.reused is False
    assert stack.versions() == [retried.version]
    runs = {r.info.run_id: r.info.status for r in train_runs(mlflow_client, airflow_run_id)}
    assert runs == {first[0].info.run_id: "FAILED", retried.run_id: "FINISHED"}
    keys = holder["s3"].keys(ARTIFACT_BUCKET, f"{ARTIFACT_PREFIX}/")
    # mlflow-artifacts:/<experiment>/<run>/artifacts is <prefix>/<experiment>/<run>/artifacts.
    artifact_uri = mlflow_client.get_run(retried.run_id).info.artifact_uri
    run_prefix = f"{ARTIFACT_PREFIX}/{artifact_uri.removeprefix('mlflow-artifacts:/')}/"
    assert f"{run_prefix}holdout/holdout.csv" in keys, keys
    source = mlflow_client.get_model_version(MODEL_NAME, retried.version).source
    logged_model = re.fullmatch(r"models:/(m-\w+)", source)
    assert logged_model, source
    model_files = [k for k in keys if f"/models/{logged_model.group(1)}/artifacts/" in k]
    assert any(k.endswith("/MLmodel") for k in model_files), keys
    # The version loads from S3 (through the tracking server) and predicts.
    frame = pd.DataFrame(RUNBOOK_PAYLOAD["dataframe_split"]["data"], columns=list(FEATURES))
    with using(stack.tracking_uri):
        (prediction,) = mlflow.pyfunc.load_model(model_uri(retried.version)).predict(frame)
    assert math.isfinite(float(prediction))
    assert assert_consistent(stack) is None  # nothing promoted on this stack
    record(
        case="s3-unreachable-during-upload",
        broken=(
            "moto (the tracking server's --artifacts-destination s3://mlflow/mlartifacts)"
            " stopped before training; restarted empty, buckets recreated, before the retry"
        ),
        system_did=(
            f"train failed after {failed_after:.0f} s at its first artifact request with"
            f" {type(failure.value).__name__} ({one_line(failure.value)}), transient so"
            " retried; its run was closed as FAILED; the retry trained again and registered"
            f" version {retried.version} with its artifacts in S3"
        ),
        checked_after=(
            "one version; one FAILED and one FINISHED train run for the airflow_run_id; holdout"
            " and model files are objects in the bucket; the version loads and predicts"
        ),
    )
