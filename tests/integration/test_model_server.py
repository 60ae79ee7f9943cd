"""The model server against a real MLflow tracking server, over HTTP, with no mocks.

One MLflow server and two registered versions of a tiny ElasticNet are shared by the module;
version 2 predicts about one point higher than version 1, so a response shows which version
made it. Tests that need a particular version point the ``production`` alias at it themselves,
so they do not depend on the order they run in.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from tests.integration._server_helpers import (
    TOKEN,
    CuttableProxy,
    Service,
    free_port,
    register_versions,
    start_mlflow,
    start_model_server,
    wait_status,
    wait_until,
)
from wine_quality.config import FEATURES, MODEL_NAME, PRODUCTION_ALIAS, RUNBOOK_PAYLOAD

if TYPE_CHECKING:
    from mlflow import MlflowClient

pytestmark = pytest.mark.integration

TOLERANCE = 1e-6
RUNBOOK_ROW = RUNBOOK_PAYLOAD["dataframe_split"]["data"][0]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Registry:
    """The registry of the test MLflow server, and what each version predicts."""

    client: MlflowClient
    expected: dict[str, float]

    def point(self, version: str) -> None:
        self.client.set_registered_model_alias(MODEL_NAME, PRODUCTION_ALIAS, version)

    def clear(self) -> None:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # No model yet: nothing to clear.
            self.client.delete_registered_model_alias(MODEL_NAME, PRODUCTION_ALIAS)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-server")


@pytest.fixture(scope="module")
def mlflow_server(workdir: Path) -> Iterator[Service]:
    service = start_mlflow(workdir / "mlflow", free_port(), workdir / "logs")
    try:
        wait_status(service, "/health", timeout=90)
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def registry(mlflow_server: Service) -> Registry:
    from mlflow import MlflowClient

    expected = register_versions(mlflow_server.url)
    assert sorted(expected) == ["1", "2"]
    assert abs(expected["2"] - expected["1"]) > 0.5  # Tell the versions apart by their answer.
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    return Registry(client=client, expected=expected)


@pytest.fixture(scope="module")
def server(
    mlflow_server: Service, workdir: Path, request: pytest.FixtureRequest
) -> Iterator[Service]:
    """The model server under test (reloads enabled), started before production exists.

    Its first answers, before anything could be loaded, are kept in ``notes["first"]``. It does
    not retry by itself, so only ``POST /admin/reload`` changes what it serves.
    """
    from mlflow import MlflowClient

    with contextlib.suppress(Exception):  # No registered model yet: no alias either.
        MlflowClient(mlflow_server.url, mlflow_server.url).delete_registered_model_alias(
            MODEL_NAME, PRODUCTION_ALIAS
        )
    service = start_model_server(
        mlflow_server.url, workdir / "logs", "model-server", token=TOKEN,
        WINE_MODEL_SERVER_RETRY_SECONDS="3600",
    )  # fmt: skip
    try:
        request.getfixturevalue("registry")  # Registers while the server boots.
        wait_until(lambda: "alias" in service.get("/served-model").json().get("reason", ""),
                   service, "its first look at the registry", timeout=60)  # fmt: skip
        service.notes["first"] = {
            path: service.get(path) for path in ("/served-model", "/ping", "/health")
        }
        service.notes["first"]["/invocations"] = service.post("/invocations", json=RUNBOOK_PAYLOAD)
        yield service
    finally:
        service.stop()


def reload(service: Service, **kwargs) -> requests.Response:
    return service.post("/admin/reload", **kwargs)


def serve(service: Service, registry: Registry, version: str) -> None:
    """Point production at ``version`` and make the server follow it."""
    registry.point(version)
    response = reload(service, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == version


def predict(service: Service, payload: dict) -> tuple[str, float]:
    """(version header, the single prediction) of a successful request."""
    response = service.post("/invocations", json=payload)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 1
    return response.headers["X-Model-Version"], float(predictions[0])


def served_version(service: Service) -> str | None:
    return service.get("/served-model").json()["version"]


def test_started_before_production_exists_it_waits_for_a_reload(
    server: Service, registry: Registry
):
    first = server.notes["first"]
    assert first["/served-model"].status_code == 200
    document = first["/served-model"].json()
    assert document["name"] == MODEL_NAME
    assert document["version"] is None
    assert document["alias"] == PRODUCTION_ALIAS
    for path in ("/ping", "/health"):
        assert first[path].status_code == 503
        assert "has the alias 'production'" in first[path].json()["reason"]
    assert first["/invocations"].status_code == 503
    assert "no model loaded" in first["/invocations"].json()["message"]

    # Whatever ran before: no alias, reload, and it serves nothing; set it, reload, and it serves.
    registry.clear()
    assert reload(server, headers=AUTH).json()["version"] is None
    assert server.get("/ping").status_code == 503
    registry.point("1")
    response = reload(server, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"version": "1", "previous_version": None, "changed": True}
    assert server.get("/ping").status_code == 200
    assert predict(server, RUNBOOK_PAYLOAD) == ("1", pytest.approx(registry.expected["1"]))


def test_recovers_by_itself_when_the_tracking_server_comes_back(
    mlflow_server: Service, registry: Registry, workdir: Path
):
    # No token, retry every 0.5 s, poll the alias; its tracking server is down at first.
    registry.point("1")
    # Down at first: the proxy only starts listening when the tracking server 'comes back'.
    forwarder = CuttableProxy(int(mlflow_server.url.rsplit(":", 1)[1]))
    auto = start_model_server(
        f"http://127.0.0.1:{forwarder.port}", workdir / "logs", "model-server-auto",
        WINE_MODEL_SERVER_RETRY_SECONDS="0.5", WINE_MODEL_SERVER_POLL_SECONDS="0.5",
    )  # fmt: skip
    try:
        wait_until(lambda: "cannot resolve" in auto.get("/served-model").json()["reason"],
                   auto, "a failed first load", timeout=60)  # fmt: skip
        assert served_version(auto) is None
        for path in ("/ping", "/health"):
            response = auto.get(path)
            assert response.status_code == 503
            assert "cannot resolve" in response.json()["reason"]
        assert auto.post("/invocations", json=RUNBOOK_PAYLOAD).status_code == 503
        response = reload(auto, headers=AUTH)
        assert response.status_code == 403
        assert "reloads disabled" in response.json()["message"]

        forwarder.start()  # The tracking server is back.
        wait_status(auto, "/ping", timeout=60)
        assert served_version(auto) == "1"
        assert predict(auto, RUNBOOK_PAYLOAD) == ("1", pytest.approx(registry.expected["1"]))

        # Polling follows the alias without a reload.
        registry.point("2")
        wait_until(lambda: served_version(auto) == "2", auto, "version 2 by polling", timeout=30)
        assert predict(auto, RUNBOOK_PAYLOAD) == ("2", pytest.approx(registry.expected["2"]))

        # SIGTERM: uvicorn finishes, runs the shutdown, then exits by the same signal.
        assert auto.stop() in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in auto.log_tail(10)
    finally:
        auto.stop()
        forwarder.cut()
        registry.point("1")


def test_runbook_payload_gets_one_prediction_with_its_version(server: Service, registry: Registry):
    serve(server, registry, "1")
    response = server.post(
        "/invocations",
        data=json.dumps(RUNBOOK_PAYLOAD),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 1
    assert predictions[0] == pytest.approx(registry.expected["1"], abs=TOLERANCE)
    assert response.headers["X-Model-Version"] == "1"
    assert response.headers["X-Model-Name"] == MODEL_NAME


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(RUNBOOK_PAYLOAD, id="dataframe_split"),
        pytest.param({"dataframe_records": [dict(zip(FEATURES, RUNBOOK_ROW, strict=True))]},
                     id="dataframe_records"),
        pytest.param({"instances": [dict(zip(FEATURES, RUNBOOK_ROW, strict=True))]},
                     id="instances"),
        pytest.param({"inputs": {f: [v] for f, v in zip(FEATURES, RUNBOOK_ROW, strict=True)}},
                     id="inputs"),
    ],
)  # fmt: skip
def test_mlflow_input_formats(server: Service, registry: Registry, payload: dict):
    version, prediction = predict(server, payload)
    assert prediction == pytest.approx(registry.expected[version], abs=TOLERANCE)


def test_csv_input(server: Service, registry: Registry):
    csv = ",".join(FEATURES) + "\n" + ",".join(map(str, RUNBOOK_ROW)) + "\n"
    response = server.post("/invocations", data=csv, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    version = response.headers["X-Model-Version"]
    assert response.json()["predictions"][0] == pytest.approx(registry.expected[version])


def test_served_model_describes_the_pinned_version(server: Service, registry: Registry):
    serve(server, registry, "1")
    document = server.get("/served-model").json()
    run_id = registry.client.get_model_version(MODEL_NAME, "1").run_id
    assert document["name"] == MODEL_NAME
    assert document["version"] == "1"
    assert document["model_uri"] == f"models:/{MODEL_NAME}/1"
    assert document["run_id"] == run_id
    assert datetime.fromisoformat(document["loaded_at"]).tzinfo is not None
    assert server.get("/ping").status_code == 200
    assert server.get("/health").status_code == 200
    assert server.get("/version").text.strip() == metadata.version("mlflow")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong-token"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="wrong-scheme"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="token-prefix"),
    ],
)
def test_reload_needs_the_token(server: Service, registry: Registry, headers: dict):
    serve(server, registry, "1")
    registry.point("2")
    try:
        response = reload(server, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert served_version(server) == "1"
    finally:
        registry.point("1")


def test_reload_follows_the_alias(server: Service, registry: Registry):
    serve(server, registry, "1")
    assert predict(server, RUNBOOK_PAYLOAD) == ("1", pytest.approx(registry.expected["1"]))
    registry.point("2")
    response = reload(server, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"version": "2", "previous_version": "1", "changed": True}
    assert served_version(server) == "2"
    assert predict(server, RUNBOOK_PAYLOAD) == ("2", pytest.approx(registry.expected["2"]))


def test_reload_checks_a_requested_version_against_the_alias(server: Service, registry: Registry):
    serve(server, registry, "1")
    again = reload(server, headers=AUTH, json={"version": "1"})
    assert again.status_code == 200
    assert again.json() == {"version": "1", "previous_version": "1", "changed": False}
    conflict = reload(server, headers=AUTH, json={"version": "2"})
    assert conflict.status_code == 409
    assert "points to version 1" in conflict.json()["message"]
    bad = reload(server, headers={**AUTH, "Content-Type": "application/json"}, data="[1]")
    assert bad.status_code == 400
    assert served_version(server) == "1"


def test_a_version_that_cannot_load_leaves_the_old_one_serving(server: Service, registry: Registry):
    serve(server, registry, "1")
    # A registered version whose artifacts do not exist.
    good = registry.client.get_model_version(MODEL_NAME, "1")
    run = registry.client.get_run(good.run_id)
    broken = registry.client.create_model_version(
        MODEL_NAME, source=f"{run.info.artifact_uri}/no_such_model", run_id=good.run_id
    )
    registry.point(broken.version)
    try:
        response = reload(server, headers=AUTH)
        assert response.status_code == 502
        body = response.json()
        assert body["error_code"] == "LOAD_FAILED"
        assert f"version {broken.version}" in body["message"]
        assert "Traceback" not in response.text
        assert served_version(server) == "1"
        assert predict(server, RUNBOOK_PAYLOAD) == ("1", pytest.approx(registry.expected["1"]))
    finally:
        registry.point("1")


def test_removing_the_alias_stops_serving_until_it_is_set_again(
    server: Service, registry: Registry
):
    serve(server, registry, "1")
    registry.clear()
    try:
        response = reload(server, headers=AUTH)
        assert response.status_code == 200
        assert response.json() == {"version": None, "previous_version": "1", "changed": True}
        assert served_version(server) is None
        assert server.get("/ping").status_code == 503
        assert server.post("/invocations", json=RUNBOOK_PAYLOAD).status_code == 503
    finally:
        serve(server, registry, "1")


def test_reload_under_traffic_drops_no_request(server: Service, registry: Registry):
    serve(server, registry, "1")
    results: list[tuple[int, float, int | None, str | None, float | None]] = []
    stop = threading.Event()

    def fire(worker: int) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    response = session.post(
                        f"{server.url}/invocations", json=RUNBOOK_PAYLOAD, timeout=10
                    )
                    prediction = float(response.json()["predictions"][0])
                    version = response.headers.get("X-Model-Version")
                    results.append((worker, time.monotonic(), response.status_code, version,
                                    prediction))  # fmt: skip
                except (requests.RequestException, ValueError, KeyError):
                    results.append((worker, time.monotonic(), None, None, None))

    workers = [threading.Thread(target=fire, args=(i,), daemon=True) for i in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        registry.point("2")
        reload_started = time.monotonic()
        response = reload(server, headers=AUTH)
        reload_done = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == "2"

    failed = [r for r in results if r[2] != 200]
    assert not failed, failed[:5]
    for _, _, _, version, prediction in results:
        assert version in ("1", "2")
        assert prediction == pytest.approx(registry.expected[version], abs=TOLERANCE)
    for worker in range(len(workers)):
        sequence = [r[3] for r in results if r[0] == worker]
        # Each worker's requests are sequential: once it has seen version 2, never version 1.
        assert sequence[0] == "1"
        assert sequence[-1] == "2"
        assert "1" not in sequence[sequence.index("2") :]
    during = [r for r in results if reload_started < r[1] < reload_done]
    assert during, "no request was answered while the new version was loading"


def test_missing_content_type_is_415(server: Service):
    response = server.post("/invocations", data=json.dumps(RUNBOOK_PAYLOAD))
    assert response.status_code == 415
    assert "Content-Type" in response.json()["message"]


def raw_request(server: Service, head: bytes, body: bytes) -> str:
    """Send a request over a plain socket and return the status line and headers."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.decode("latin-1")


def test_declared_oversize_body_is_refused_before_it_is_read(server: Service):
    # Content-Length says 6 MiB but only 1 KiB is sent: the answer cannot wait for the rest.
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 6291456\r\n\r\n"
    )
    assert raw_request(server, head, b" " * 1024).startswith("HTTP/1.1 413")


def test_streamed_oversize_body_is_refused(server: Service):
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b" " * (256 * 1024)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(21))  # 5.25 MiB
    assert raw_request(server, head, body).startswith("HTTP/1.1 413")


@pytest.mark.parametrize(
    ("data", "content_type", "error_code"),
    [
        pytest.param("{not json", "application/json", "BAD_REQUEST", id="bad-json"),
        pytest.param(json.dumps({"dataframe_split": {"columns": ["a"], "data": [[1]]}}),
                     "application/json", "INVALID_PARAMETER_VALUE", id="missing-columns"),
        pytest.param(json.dumps({"rows": [1]}), "application/json", "BAD_REQUEST",
                     id="unknown-format"),
        pytest.param("a,b\n1,2\n", "text/csv", "INVALID_PARAMETER_VALUE", id="csv-wrong-columns"),
    ],
)  # fmt: skip
def test_bad_input_is_400_without_a_stack_trace(
    server: Service, data: str, content_type: str, error_code: str
):
    response = server.post("/invocations", data=data, headers={"Content-Type": content_type})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == error_code
    assert "Traceback" not in response.text
    assert len(body["message"]) <= 600


def test_unknown_paths_and_methods(server: Service):
    assert server.get("/nope").status_code == 404
    assert server.get("/invocations").status_code == 405
    assert server.get("/admin/reload").status_code == 405
