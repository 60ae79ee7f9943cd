"""The model server with two worker processes: a reload reaching one worker reaches both.

A real MLflow tracking server with the two versions of tests/integration/test_model_server.py
(version 2 predicts about one point higher), and ``python -m wine_quality.serving`` started with
``WINE_MODEL_SERVER_WORKERS=2``. Requests go over new connections, which the kernel hands to
either worker, so a worker left behind would show up in the headers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.load import run_load
from tests.integration.harness import Process, pid_alive, wait_for
from tests.integration.services import start_mlflow, start_model_server
from tests.integration.test_model_server import AUTH, TOKEN, Registry, register_versions
from wine_quality.core.config import RUNBOOK_PAYLOAD

pytestmark = pytest.mark.integration
WORKERS = 2
STATE_DIR_ENV = "WINE_MODEL_SERVER_STATE_DIR"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-server-workers")


@pytest.fixture(scope="module")
def mlflow_server(workdir: Path) -> Iterator[Process]:
    service = start_mlflow(workdir / "mlflow", workdir / "logs")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def registry(mlflow_server: Process) -> Registry:
    from mlflow import MlflowClient

    expected = register_versions(mlflow_server.url)
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    return Registry(client=client, expected=expected)


def worker_versions(server: Process) -> dict[int, str | None]:
    return {w["pid"]: w["version"] for w in server.get("/served-model").json()["workers"]}


@pytest.fixture(scope="module")
def server(mlflow_server: Process, registry: Registry, workdir: Path) -> Iterator[Process]:
    """Two workers serving version 1; stopping it must leave no worker and no state behind."""
    registry.point("1")
    service = start_model_server(
        mlflow_server.url, workdir / "logs", "model-server-workers", token=TOKEN,
        WINE_MODEL_SERVER_WORKERS=str(WORKERS), WINE_MODEL_SERVER_RETRY_SECONDS="1",
    )  # fmt: skip
    try:
        wait_for(lambda: list(worker_versions(service).values()) == ["1"] * WORKERS,
                 "both workers on version 1", timeout=90, process=service)  # fmt: skip
        pids = list(worker_versions(service))
        environ = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
        state = next(e for e in environ if e.startswith(STATE_DIR_ENV.encode() + b"="))
        service.notes["workers"] = pids
        service.notes["state"] = Path(state.split(b"=", 1)[1].decode())
        assert service.notes["state"].is_dir()
        yield service
    finally:
        service.stop()
    assert not any(pid_alive(pid) for pid in service.notes.get("workers", []))
    assert not service.notes.get("state", Path("/nonexistent")).exists()


def test_served_model_lists_every_worker_with_one_version(server: Process, registry: Registry):
    document = server.get("/served-model").json()
    assert document["version"] == "1"
    workers = document["workers"]
    assert len(workers) == WORKERS
    assert {w["version"] for w in workers} == {"1"}
    assert len({w["generation"] for w in workers}) == 1


def test_every_worker_follows_a_reload(server: Process, registry: Registry):
    registry.point("2")
    try:
        response = server.post("/admin/reload", headers=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["version"] == "2"
        assert body["workers"] == {str(pid): "2" for pid in server.notes["workers"]}
        # New connection each time: the kernel hands them to either worker.
        versions = [
            requests.post(f"{server.url}/invocations", json=RUNBOOK_PAYLOAD, timeout=10)
            for _ in range(200)
        ]
        assert all(r.status_code == 200 for r in versions)
        assert {r.headers["X-Model-Version"] for r in versions} == {"2"}
        assert set(worker_versions(server).values()) == {"2"}
    finally:
        registry.point("1")
        assert server.post("/admin/reload", headers=AUTH).json()["version"] == "1"


def test_load_across_a_reload_fails_nothing_and_never_goes_back(
    server: Process, registry: Registry
):
    seconds = 12.0
    reloaded: list[tuple[float, requests.Response]] = []

    def promote_half_way() -> None:
        time.sleep(seconds / 2)
        registry.point("2")
        response = server.post("/admin/reload", headers=AUTH, timeout=60)
        reloaded.append((time.monotonic(), response))

    promoter = threading.Thread(target=promote_half_way)
    promoter.start()
    try:
        result = run_load(
            f"{server.url}/invocations", RUNBOOK_PAYLOAD,
            seconds=seconds, concurrency=8, max_requests=200_000,
        )  # fmt: skip
        promoter.join(60)
        assert reloaded, "the reload did not return"
        returned_at, response = reloaded[0]
        assert response.status_code == 200, response.text
        summary = result.summary()
        assert summary["failed"] == 0, result.failed[:5]
        assert set(summary["versions"]) == {"1", "2"}
        for sample in result.samples:
            assert sample.prediction == pytest.approx(registry.expected[sample.version])
        late = [s for s in result.samples if s.started > returned_at]
        assert late, "no request started after the reload returned"
        assert {s.version for s in late} == {"2"}
    finally:
        registry.point("1")
        server.post("/admin/reload", headers=AUTH)


def answers_until(url: str, done: threading.Event) -> list[int | str]:
    """Status of every ``/invocations`` request, each on a new connection, until ``done``."""
    seen: list[int | str] = []
    while not done.is_set():
        try:
            response = requests.post(f"{url}/invocations", json=RUNBOOK_PAYLOAD, timeout=30)
        except requests.ConnectionError:
            seen.append("refused")
            time.sleep(0.02)
            continue
        seen.append(
            response.status_code if response.ok else f"{response.status_code} {response.text[:200]}"
        )
    return seen


def test_a_starting_server_answers_only_once_its_workers_serve(
    mlflow_server: Process, registry: Registry, workdir: Path
):
    """A worker takes connections only once it serves: no 503 "starting" from any of three.

    Requests begin before the server does; each is a new connection, handed by the kernel to any
    worker that accepts. Refused connections (no worker listening yet) are what a client sees of
    a server that is not up; a 503 after another worker already served would be a lie.
    """
    registry.point("1")
    service = start_model_server(
        mlflow_server.url, workdir / "logs", "model-server-starting", token=TOKEN,
        WINE_MODEL_SERVER_WORKERS="3", WINE_MODEL_SERVER_RETRY_SECONDS="1",
    )  # fmt: skip
    done = threading.Event()
    answers: list[list[int | str]] = []
    client = threading.Thread(target=lambda: answers.append(answers_until(service.url, done)))
    client.start()
    try:
        wait_for(lambda: len(worker_versions(service)) == 3
                 and set(worker_versions(service).values()) == {"1"},
                 "three workers on version 1", timeout=120, process=service)  # fmt: skip
        time.sleep(1.0)  # Keep asking after every worker serves.
    finally:
        done.set()
        client.join(60)
        service.stop()
    seen = answers[0]
    served = [a for a in seen if a != "refused"]
    assert served.count(200) >= 20, seen[-20:]
    assert set(served) == {200}, [a for a in served if a != 200][:5]
    assert seen.index(200) == len(seen) - len(served), "refused after a worker served"


def test_a_worker_killed_is_replaced_and_catches_up(server: Process, registry: Registry):
    import os
    import signal

    victim = server.notes["workers"][-1]
    done = threading.Event()
    answers: list[list[int | str]] = []
    client = threading.Thread(target=lambda: answers.append(answers_until(server.url, done)))
    client.start()
    try:
        os.kill(victim, signal.SIGKILL)
        # uvicorn's parent starts a new worker; its status replaces the dead one's.
        wait_for(
            lambda: victim not in (found := worker_versions(server)) and len(found) == WORKERS
            and set(found.values()) == {"1"},
            "a replacement worker on version 1", timeout=90, process=server,
        )  # fmt: skip
        time.sleep(1.0)
    finally:
        done.set()
        client.join(60)
    # The survivor answers while the replacement loads; the replacement joins once it serves.
    # The one request the victim may have been answering when it was killed is cut off.
    served = [a for a in answers[0] if a != "refused"]
    assert len(answers[0]) - len(served) <= 1, answers[0]
    assert served.count(200) >= 20, answers[0][-20:]
    assert set(served) == {200}, [a for a in served if a != 200][:5]
    server.notes["workers"] = list(worker_versions(server))
    registry.point("2")
    try:
        response = server.post("/admin/reload", headers=AUTH)
        assert response.status_code == 200, response.text
        assert set(response.json()["workers"].values()) == {"2"}
    finally:
        registry.point("1")
        server.post("/admin/reload", headers=AUTH)
