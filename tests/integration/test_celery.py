"""The distributed path, executed: the DAG on CeleryExecutor with two workers on this machine.

The topology of the docker compose file, as native processes: Redis (Debian's ``redis-server``,
loopback only, no persistence) as the Celery broker, a throwaway PostgreSQL cluster for Airflow's
metadata and Celery's results, the local stack (MLflow + model server), and Airflow started
through scripts/airflow.sh exactly as users start it: ``up`` for the API server, scheduler, DAG
processor and triggerer, ``worker NAME`` for each of two Celery workers. Each worker records its
name as the task instances' host name (``[core] hostname_callable``), so the records say which
worker ran what.

The second run checks the worker's warm shutdown: SIGTERM to a worker's main process while it
runs ``train``. Celery then stops taking tasks, lets the running one finish and exits; the rest
of the run goes to the other worker, and the candidate is registered exactly once. (SIGTERM to
the worker's whole process group would reach the task processes too and kill the task: that is
a cold stop, which Airflow's image avoids for Celery workers with ``DUMB_INIT_SETSID=0``.)
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.integration.airflow import airflow_running, listening_addresses
from tests.integration.harness import pid_alive, stopped_after, wait_for
from tests.integration.services import PostgresCluster, Redis, missing, start_redis
from tests.integration.stack import Stack, running, stack_env
from wine_quality.core.config import MODEL_NAME

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKERS = ("worker-a", "worker-b")
# Two task slots per worker: the DAG is mostly a chain, so more would only cost memory.
CONCURRENCY = "2"
RUN_TIMEOUT = 300


def celery_env(postgres: PostgresCluster, redis: Redis) -> dict[str, str]:
    """What makes scripts/airflow.sh run Airflow on CeleryExecutor over these services."""
    metadata = postgres.url("airflow")  # postgresql+psycopg2://airflow:...@127.0.0.1:port/airflow
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__CELERY__BROKER_URL": redis.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
        # Only the runs this test triggers: unpausing must not also start last night's run.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }


def online_workers(broker_url: str) -> set[str]:
    """The worker names (before the ``@``) that answer a Celery ping on ``broker_url``."""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        answers = app.control.ping(timeout=1.0) or []
    finally:
        app.close()
    return {name.split("@", 1)[0] for answer in answers for name in answer}


def versions_of_run(stack: Stack, run_id: str) -> list[str]:
    """The model versions registered by the Airflow run ``run_id`` (its ``airflow_run_id`` tag)."""
    found = stack.client().search_model_versions(
        f"name = '{MODEL_NAME}' and tags.airflow_run_id = '{run_id}'"
    )
    return sorted(str(v.version) for v in found)


def worker_pid(stack: Stack, name: str) -> int:
    return stack.pids()[f"celery-worker-{name}"]


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    with stopped_after(start_redis(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture(scope="module")
def celery(tmp_path_factory, wine_csv, postgres, redis):
    """The stack, Airflow on CeleryExecutor (scripts/airflow.sh up) and two named workers."""
    try:
        import airflow.providers.celery  # noqa: F401
    except ImportError:
        missing("apache-airflow-providers-celery is not installed (requirements.txt)")
    state = tmp_path_factory.mktemp("celery-stack")
    env = {**stack_env(state), "WINE_DATA_URI": str(wine_csv)}
    with (
        running(Stack(state=state, env=env)) as stack,
        airflow_running(stack, **celery_env(postgres, redis)) as api,
    ):
        for name in WORKERS:
            started = stack.script("airflow.sh", "worker", name, CONCURRENCY, timeout=60)
            assert started.returncode == 0, started.stdout + started.stderr
        wait_for(lambda: online_workers(redis.url) >= set(WORKERS), f"{WORKERS} all online",
                 timeout=120)  # fmt: skip
        api.wait_for_dag()
        api.set_paused(False)
        yield stack, api, redis


def test_a_forced_run_is_spread_over_both_workers_and_served(celery):
    stack, api, redis = celery
    # Every process of ours, the two workers included, listens on loopback only (if at all).
    addresses = listening_addresses({*stack.pids().values(), redis.process.pid})
    assert all(a.startswith("127.0.0.1:") for a in addresses), addresses

    run_id = api.trigger({"force_promotion": True})
    done = api.wait_run(run_id, RUN_TIMEOUT)
    assert done["state"] == "success", api.states(run_id)

    ran = [t for t in api.task_instances(run_id) if t["state"] == "success"]
    by_worker = {name: sorted(t["task_id"] for t in ran if t["hostname"] == name)
                 for name in WORKERS}  # fmt: skip
    assert all(by_worker.values()), by_worker  # both workers ran tasks ...
    assert sum(map(len, by_worker.values())) == len(ran), ran  # ... and nobody else did
    summary = api.xcom(run_id, "report")
    assert summary["decision"] == "forced"
    assert versions_of_run(stack, run_id) == [summary["promoted_version"]]
    assert stack.production() == summary["promoted_version"] == stack.served()["version"]


def test_a_warm_shutdown_mid_run_hands_the_rest_to_the_other_worker(celery):
    stack, api, redis = celery
    both = set(WORKERS)
    wait_for(lambda: online_workers(redis.url) >= both, f"{WORKERS} both online", timeout=60)
    run_id = api.trigger({"force_promotion": True})

    def train_running() -> dict | None:
        return next(
            (t for t in api.task_instances(run_id)
             if t["task_id"] == "train" and t["state"] == "running" and t["hostname"]),
            None,
        )  # fmt: skip

    train = wait_for(train_running, "train running", timeout=180, ignore=())
    victim = train["hostname"]
    assert victim in both, train
    (survivor,) = both - {victim}
    pid = worker_pid(stack, victim)
    # The worker's main process only: Celery's warm shutdown (stop consuming, finish, exit).
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), f"{victim} (pid {pid}) to exit", timeout=RUN_TIMEOUT)
    assert api.states(run_id)["train"] == "success", "the running task was let finish"

    done = api.wait_run(run_id, RUN_TIMEOUT)
    assert done["state"] == "success", api.states(run_id)
    tis = {t["task_id"]: t for t in api.task_instances(run_id)}
    assert tis["train"]["hostname"] == victim
    assert tis["train"]["try_number"] == 1
    after = ("evaluate", "should_promote", "promote", "deploy", "canary", "report")
    assert {task: tis[task]["hostname"] for task in after} == dict.fromkeys(after, survivor)
    assert all(t["try_number"] == 1 for t in tis.values() if t["state"] == "success"), tis

    summary = api.xcom(run_id, "report")
    assert summary["decision"] == "forced"
    assert versions_of_run(stack, run_id) == [summary["promoted_version"]]  # registered once
    assert stack.production() == summary["promoted_version"] == stack.served()["version"]
    # Pings go unanswered on a busy machine: ask until someone answers.
    answering = wait_for(lambda: online_workers(redis.url), "a worker's answer", timeout=60)
    assert answering == {survivor}
