"""The same pipeline on the production topology, chosen by environment only.

MLflow keeps its metadata in PostgreSQL and its artifacts in S3 (the runbook's layout: bucket
``mlflow``, prefix ``mlartifacts``, storage keys on the tracking server only); raw data and the
run snapshots live in an S3 data bucket reached through the Airflow connection ``wine_s3``;
Airflow's own metadata database is PostgreSQL too. The services are real processes: a throwaway
PostgreSQL cluster and moto's S3 server (standing in for MinIO), then the stack through the same
scripts `make run` uses. Nothing in the code under test knows it is being tested: only the
environment differs from the embedded stack.

Order matters, as in test_pipeline_e2e: first run, rerun, key hygiene, restarts, runbook serving.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.integration.harness import (
    REPO,
    Process,
    clean_env,
    descendants,
    free_port,
    pid_alive,
    stopped_after,
    wait_for,
)
from tests.integration.services import start_s3
from tests.integration.stack import Stack, assert_first_run_promoted, running, stack_env
from wine_quality.core.config import FEATURES, MODEL_NAME, PRODUCTION_ALIAS, RUNBOOK_PAYLOAD

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARTIFACT_BUCKET, ARTIFACT_PREFIX = "mlflow", "mlartifacts"
DATA_BUCKET = "wine-data"
SOURCE_KEY = "source/winequality-red.csv"
# MLflow's storage keys (tracking server only) and the data connection's keys: distinct, so a
# leak of one into the other's place would show.
MLFLOW_KEYS = {
    "AWS_ACCESS_KEY_ID": "mlflow-server-key-3f9a1c",
    "AWS_SECRET_ACCESS_KEY": "mlflow-server-secret-b72e50d4",
}
DATA_KEYS = {"login": "wine-data-key-81d7", "password": "wine-data-secret-5c0e2a"}
# What the tasks and the model server must never hold.
STORAGE_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "MLFLOW_S3_ENDPOINT_URL")  # fmt: skip
PREDICTION_TOLERANCE = 1e-9


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server with the buckets ``mlflow`` and ``wine-data``."""
    with stopped_after(start_s3(tmp_path_factory.mktemp("moto"))) as server:
        yield server


@pytest.fixture(scope="module")
def source_uri(s3, wine_csv) -> str:
    """The raw CSV, put where a production source would be: an S3 object."""
    s3.client().put_object(Bucket=DATA_BUCKET, Key=SOURCE_KEY, Body=wine_csv.read_bytes())
    return f"s3://{DATA_BUCKET}/{SOURCE_KEY}"


@pytest.fixture(scope="module")
def prod(tmp_path_factory, postgres, s3):
    """The stack (scripts/stack.sh) configured for the production topology by environment."""
    state = tmp_path_factory.mktemp("prod-stack")
    env = stack_env(state)
    connection = {
        "conn_type": "aws",
        **DATA_KEYS,
        "extra": {"endpoint_url": s3.endpoint, "region_name": "us-east-1"},
    }
    env.update(
        # psycopg2 explicitly: SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql:// and
        # MLflow's stage transition then fails (mlflow#24592).
        BACKEND_URI=postgres.url("mlflow"),
        ARTIFACT_ROOT=f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_PREFIX}",
        MLFLOW_S3_ENDPOINT_URL=s3.endpoint,
        **MLFLOW_KEYS,
        WINE_STAGING_URI=f"s3://{DATA_BUCKET}",
        AIRFLOW_CONN_WINE_S3=json.dumps(connection),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres.url("airflow"),
    )
    with running(Stack(state=state, env=env), up_timeout=240) as live:
        yield live


@dataclass
class WatchedRun:
    """A run of scripts/run-dag.sh, and what the `airflow dags test` processes held."""

    code: int
    summary: dict
    output: str
    # pid -> (command line, environment) of `airflow dags test` and its descendants.
    processes: dict[int, tuple[str, dict[str, str]]] = field(default_factory=dict)

    @property
    def dags_test_log(self) -> Path:
        match = re.search(r"; log: (\S+\.log)", self.output)
        assert match, self.output[-2000:]
        return Path(match.group(1))


def _read_process(pid: int) -> tuple[str, dict[str, str]] | None:
    """Command line and environment (as given to exec) of ``pid``; None if it is gone."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env = dict(
        item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
    )
    return cmdline.strip(), env


def run_dag_watched(stack: Stack, data_uri: str, timeout: float = 900) -> WatchedRun:
    """Run scripts/run-dag.sh like ``Stack.run_dag`` while sampling its processes' environments.

    The caller's environment (``stack.env``) holds MLflow's storage keys, as a shell with the
    stack's ``.env`` loaded would. Tasks run inside the `airflow dags test` process (no
    executor), so that process's environment, and any process it starts, is what tasks see.
    """
    out = Path(tempfile.mkstemp(prefix="run-dag-", suffix=".out", dir=stack.state)[1])
    process = Process.start("run-dag", [str(REPO / "scripts" / "run-dag.sh")], out,
                            env={**stack.env, "WINE_DATA_URI": data_uri})  # fmt: skip
    seen: dict[int, tuple[str, dict[str, str]]] = {}
    deadline = time.monotonic() + timeout
    try:
        # Sampling, not waiting: every 0.2 s, whatever `airflow dags test` runs holds.
        while process.alive():
            if time.monotonic() > deadline:
                raise TimeoutError(f"run-dag.sh did not finish in {timeout:g} s")
            for pid in descendants({process.pid}):
                info = _read_process(pid)
                if info and "dags test" in info[0]:
                    for task_pid in descendants({pid}):
                        if task_pid not in seen and (found := _read_process(task_pid)):
                            seen[task_pid] = found
            time.sleep(0.2)
    finally:
        if process.alive():
            process.stop()
    summary_file = stack.state / "last-run-summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return WatchedRun(process.popen.returncode, summary, out.read_text(errors="replace"), seen)


@pytest.fixture(scope="module")
def first_run(prod, source_uri) -> WatchedRun:
    return run_dag_watched(prod, source_uri)


@pytest.fixture(scope="module")
def rerun(prod, first_run, source_uri) -> WatchedRun:
    return run_dag_watched(prod, source_uri)


# --- helpers -------------------------------------------------------------------------------------


def s3_key(mlflow_artifacts_uri: str) -> str:
    """``mlflow-artifacts:/1/x`` -> the key behind the server's proxy: ``mlartifacts/1/x``."""
    assert mlflow_artifacts_uri.startswith("mlflow-artifacts:/"), mlflow_artifacts_uri
    return f"{ARTIFACT_PREFIX}/{mlflow_artifacts_uri.removeprefix('mlflow-artifacts:/')}"


def predict(url: str, payload: dict) -> tuple[list[float], requests.Response]:
    response = requests.post(f"{url}/invocations", json=payload, timeout=30)
    assert response.status_code == 200, response.text[:500]
    return response.json()["predictions"], response


def assert_close(actual: list[float], expected: list[float]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert math.isfinite(a)
        assert abs(a - e) <= PREDICTION_TOLERANCE, (a, e)


def wait_served(stack: Stack, version: str, timeout: float = 180) -> dict:
    return wait_for(
        lambda: (served := stack.served()).get("version") == version and served,
        f"version {version} on the model server", timeout=timeout, every=0.5,
    )  # fmt: skip


def storage_env_of(pid: int) -> dict[str, str]:
    info = _read_process(pid)
    assert info is not None, f"process {pid} is gone"
    return {k: v for k, v in info[1].items() if k in STORAGE_VARS}


def process_group(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rpartition(")")[2].split()[2]) == pgid:
                members.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return members


# --- tests ---------------------------------------------------------------------------------------


def test_first_run_promotes_version_1(prod, first_run):
    assert_first_run_promoted(prod, first_run.code, first_run.summary, first_run.output)
    # Nothing fell back to the embedded defaults (SQLite files, local artifacts or snapshots).
    assert not (prod.state / "mlflow").exists()
    assert not (prod.state / "staging").exists()
    assert not list((prod.state / "airflow").glob("*.db"))


def test_model_artifacts_are_objects_in_the_mlflow_bucket(prod, s3, first_run):
    client = prod.client()
    version = client.get_model_version(MODEL_NAME, "1")
    model_id = version.source.removeprefix("models:/")
    model_prefix = s3_key(client.get_logged_model(model_id).artifact_location) + "/"
    keys = set(s3.keys(ARTIFACT_BUCKET, f"{ARTIFACT_PREFIX}/"))
    assert f"{model_prefix}MLmodel" in keys, sorted(keys)
    assert f"{model_prefix}artifacts/pipeline.skops" in keys, sorted(keys)
    mlmodel = s3.client().get_object(Bucket=ARTIFACT_BUCKET, Key=f"{model_prefix}MLmodel")
    text = mlmodel["Body"].read().decode()
    assert "python_function" in text
    assert model_id in text
    run_prefix = s3_key(client.get_run(version.run_id).info.artifact_uri) + "/"
    assert f"{run_prefix}holdout/holdout.csv" in keys


def test_registry_and_airflow_metadata_are_in_postgres(postgres, first_run):
    with closing(postgres.connect("mlflow")) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM registered_models")
        assert (MODEL_NAME,) in cur.fetchall()
        cur.execute(
            "SELECT version, current_stage FROM model_versions WHERE name = %s", (MODEL_NAME,)
        )
        assert (1, "Production") in cur.fetchall()
        cur.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL_NAME,)
        )
        assert (PRODUCTION_ALIAS, 1) in cur.fetchall()
    with closing(postgres.connect("airflow")) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, state FROM dag_run WHERE dag_id = 'wine_retraining'")
        assert (first_run.summary["airflow_run_id"], "success") in cur.fetchall()


def test_raw_snapshot_is_in_the_data_bucket_with_its_sha256(prod, s3, first_run, wine_csv):
    version = prod.client().get_model_version(MODEL_NAME, "1")
    # The training run records where its bytes came from; that object must be the snapshot.
    inputs = prod.client().get_run(version.run_id).inputs.dataset_inputs
    training = next(d.dataset for d in inputs if d.dataset.name == "winequality-red")
    snapshot = json.loads(training.source)["uri"]
    match = re.fullmatch(rf"s3://{DATA_BUCKET}/(raw/[^/]+/winequality-red\.csv)", snapshot)
    assert match, snapshot
    assert match.group(1) in s3.keys(DATA_BUCKET, "raw/")
    stored = s3.client().get_object(Bucket=DATA_BUCKET, Key=match.group(1))["Body"].read()
    expected = hashlib.sha256(wine_csv.read_bytes()).hexdigest()
    assert hashlib.sha256(stored).hexdigest() == expected
    assert version.tags["data_sha256"] == expected
    assert first_run.summary["data_sha256"] == expected


def test_rerun_on_same_data_does_not_promote(prod, rerun):
    assert rerun.code == 0, rerun.output[-3000:]
    summary = rerun.summary
    assert summary["decision"] == "keep production"
    assert summary["candidate_version"] == "2"
    assert summary["production_version_before"] == "1"
    assert summary["candidate_metrics"] == summary["production_metrics"]
    assert summary["promoted_version"] is None
    assert prod.production() == "1"
    assert prod.served()["version"] == "1"


def test_tasks_and_model_server_never_hold_mlflow_storage_keys(prod, first_run, rerun):
    """MLflow's S3 keys and endpoint reach the tracking server and nothing else.

    How this can fail: ``run_dag_watched`` calls scripts/run-dag.sh with the keys in its
    environment (``prod.env``, the same environment ``stack.sh up`` got). Tasks run inside the
    `airflow dags test` process, and /proc/<pid>/environ shows the environment that process
    was started with, so if run-dag.sh stopped unsetting the keys they would appear there and
    this test would fail. The tracking server holding them is the positive control: it proves
    the keys were really in the environment the scripts received. The model server is checked
    the same way (stack.sh unsets them for it). The runs still succeeded, so the tasks reached
    S3 data through the ``wine_s3`` connection and MLflow artifacts through the server's proxy.
    """
    for name in STORAGE_VARS[:2]:
        assert prod.env[name] == MLFLOW_KEYS[name]
    pids = prod.pids()
    tracking = storage_env_of(pids["mlflow"])
    assert tracking["AWS_ACCESS_KEY_ID"] == MLFLOW_KEYS["AWS_ACCESS_KEY_ID"]
    assert tracking["MLFLOW_S3_ENDPOINT_URL"] == prod.env["MLFLOW_S3_ENDPOINT_URL"]

    for run in (first_run, rerun):
        assert run.code == 0, run.output[-2000:]
        dags_test = [cmd for cmd, _ in run.processes.values() if "dags test" in cmd]
        assert dags_test, "no `airflow dags test` process was observed: the check proves nothing"
        for pid, (cmdline, env) in run.processes.items():
            held = sorted(set(env) & set(STORAGE_VARS))
            assert not held, f"{cmdline} (pid {pid}) was started with {held}"
            leaked = [k for k, v in env.items() if any(s in v for s in MLFLOW_KEYS.values())]
            assert not leaked, f"{cmdline} (pid {pid}) holds MLflow's keys in {leaked}"
        log = run.dags_test_log.read_text(errors="replace")
        assert "wine_retraining" in log
        for secret in MLFLOW_KEYS.values():
            assert secret not in log
            assert secret not in run.output

    members = process_group(pids["model-server"])
    assert pids["model-server"] in members
    for pid in members:
        assert storage_env_of(pid) == {}, f"model server process {pid} holds storage settings"


def test_restarting_mlflow_and_postgres_loses_nothing(prod, postgres, rerun, wine_csv):
    before, response = predict(prod.server_url, RUNBOOK_PAYLOAD)
    assert response.headers["X-Model-Version"] == "1"
    old = prod.pids()
    down = prod.script("stack.sh", "down", timeout=90)
    assert down.returncode == 0, down.stderr
    postgres.stop()
    import psycopg2

    with pytest.raises(psycopg2.OperationalError):
        postgres.connect("mlflow").close()
    assert not [name for name, pid in old.items() if pid_alive(pid)]

    postgres.start()
    up = prod.script("stack.sh", "up", timeout=240)
    assert up.returncode == 0, up.stdout + up.stderr
    assert set(prod.pids()) == {"mlflow", "model-server"}
    assert not set(prod.pids().values()) & set(old.values())

    assert prod.production() == "1"
    assert prod.client().get_latest_versions(MODEL_NAME, stages=["Production"])[0].version == "1"
    # A fresh process with only the tracking URI: no storage keys, nothing of this test's state.
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        "payload = json.loads(sys.argv[1])['dataframe_split']\n"
        f"model = mlflow.pyfunc.load_model('models:/{MODEL_NAME}@{PRODUCTION_ALIAS}')\n"
        "frame = pd.DataFrame(payload['data'], columns=payload['columns'])\n"
        "print(json.dumps({'run_id': model.metadata.run_id,"
        " 'predictions': [float(p) for p in model.predict(frame)]}))\n"
    )
    env = clean_env(
        MLFLOW_TRACKING_URI=prod.tracking_uri, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"
    )
    with tempfile.TemporaryDirectory() as cwd:
        loaded = subprocess.run(
            [sys.executable, "-c", script, json.dumps(RUNBOOK_PAYLOAD)], cwd=cwd, env=env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert result["run_id"] == prod.client().get_model_version(MODEL_NAME, "1").run_id
    assert_close(result["predictions"], before)

    served = wait_served(prod, "1")
    assert served["run_id"] == result["run_id"]
    after, response = predict(prod.server_url, RUNBOOK_PAYLOAD)
    assert response.headers["X-Model-Version"] == "1"
    assert_close(after, before)


def test_runbook_mlflow_models_serve_matches_the_model_server(prod, rerun, wine_frame, tmp_path):
    rows = wine_frame.loc[:, list(FEATURES)].iloc[::80].head(20).astype(float).values.tolist()
    payloads = [
        RUNBOOK_PAYLOAD,
        {"dataframe_split": {"columns": list(FEATURES), "data": rows}},
    ]
    port = free_port()
    env = clean_env(MLFLOW_TRACKING_URI=prod.tracking_uri)
    cwd = tmp_path / "runbook"
    cwd.mkdir()
    # The runbook's step 7, verbatim but for the port and --env-manager local.
    command = ["mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}/Production",
               "-p", str(port), "--env-manager", "local"]  # fmt: skip
    server = Process.start("mlflow-models-serve", command, tmp_path / "serve.log", cwd=cwd,
                           env=env, url=f"http://127.0.0.1:{port}")  # fmt: skip
    try:
        server.wait_http("/ping", timeout=240)
        for payload in payloads:
            runbook, _ = predict(f"http://127.0.0.1:{port}", payload)
            pipeline, response = predict(prod.server_url, payload)
            assert response.headers["X-Model-Version"] == "1"
            assert len(runbook) == len(payload["dataframe_split"]["data"])
            assert_close(runbook, pipeline)
    finally:
        server.stop()
    assert not process_group(server.pid)
