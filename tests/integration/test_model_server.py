"""The model server against a real MLflow tracking server, over HTTP, with no mocks.

One MLflow server and two registered versions of a tiny ElasticNet are shared by the module;
version 2 predicts about one point higher than version 1, so a response shows which version
made it. Tests that need a particular version point the ``production`` alias at it themselves,
so they do not depend on the order they run in.

The processes are started directly (tests/integration/services.py), not through the stack's
scripts: the tests need a model server started before production exists, one whose tracking
server is unreachable at first, and one stopped by SIGTERM, each with its own settings.

Run as ``python -m tests.integration.test_model_server TRACKING_URI`` it registers the two
versions and prints what each predicts for the runbook's row; the tests do that in a child
process so that MLflow's process-wide tracking URI is never changed in the test process.
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

from tests.integration.harness import Process, wait_for
from tests.integration.proxy import CuttableProxy
from tests.integration.services import start_mlflow, start_model_server
from wine_quality.core.config import FEATURES, MODEL_NAME, PRODUCTION_ALIAS, RUNBOOK_PAYLOAD

if TYPE_CHECKING:
    from mlflow import MlflowClient

pytestmark = pytest.mark.integration

TOLERANCE = 1e-6
TOKEN = "test-reload-token"
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


def register_versions(tracking_uri: str) -> dict[str, float]:
    """Log and register two small ElasticNets whose predictions differ by about one point.

    Returns:
        ``{version: its prediction for the runbook row}``.
    """
    from importlib import metadata

    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import ElasticNet

    from wine_quality.core.config import FEATURES, MODEL_NAME, RUNBOOK_PAYLOAD
    from wine_quality.core.tracking import ensure_experiment, using

    rng = np.random.default_rng(7)
    # Rough means of the red wine features, so the rows look like wine.
    means = np.array([8.3, 0.53, 0.27, 2.5, 0.087, 16, 46, 0.997, 3.3, 0.66, 10.4])
    features = pd.DataFrame(rng.uniform(0.7, 1.3, size=(40, len(FEATURES))) * means,
                            columns=list(FEATURES))  # fmt: skip
    runbook = pd.DataFrame(
        RUNBOOK_PAYLOAD["dataframe_split"]["data"], columns=list(FEATURES), dtype="float64"
    )
    expected: dict[str, float] = {}
    with using(tracking_uri) as client:
        experiment_id = ensure_experiment(client, "model_server_tests")
        for offset in (0.0, 1.0):
            target = 3 + 0.25 * features["alcohol"] - 1.5 * features["volatile acidity"] + offset
            model = ElasticNet(alpha=0.001, max_iter=10_000).fit(features, target)
            with mlflow.start_run(experiment_id=experiment_id):
                info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    registered_model_name=MODEL_NAME,
                    input_example=features.head(2),
                    signature=infer_signature(features, model.predict(features)),
                    # Explicit pins skip MLflow's slow requirement inference.
                    pip_requirements=[
                        f"mlflow=={metadata.version('mlflow')}",
                        f"scikit-learn=={metadata.version('scikit-learn')}",
                    ],
                )
            expected[str(info.registered_model_version)] = float(model.predict(runbook)[0])
    return expected


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-server")


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
    assert sorted(expected) == ["1", "2"]
    assert abs(expected["2"] - expected["1"]) > 0.5  # Tell the versions apart by their answer.
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    return Registry(client=client, expected=expected)


@pytest.fixture(scope="module")
def server(
    mlflow_server: Process, workdir: Path, request: pytest.FixtureRequest
) -> Iterator[Process]:
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
        wait_for(lambda: "alias" in service.get("/served-model").json().get("reason", ""),
                 "its first look at the registry", timeout=60, process=service)  # fmt: skip
        service.notes["first"] = {
            path: service.get(path) for path in ("/served-model", "/ping", "/health")
        }
        service.notes["first"]["/invocations"] = service.post("/invocations", json=RUNBOOK_PAYLOAD)
        yield service
    finally:
        service.stop()


def reload(service: Process, **kwargs) -> requests.Response:
    return service.post("/admin/reload", **kwargs)


def serve(service: Process, registry: Registry, version: str) -> None:
    """Point production at ``version`` and make the server follow it."""
    registry.point(version)
    response = reload(service, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == version


def predict(service: Process, payload: dict) -> tuple[str, float]:
    """(version header, the single prediction) of a successful request."""
    response = service.post("/invocations", json=payload)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 1
    return response.headers["X-Model-Version"], float(predictions[0])


def served_version(service: Process) -> str | None:
    return service.get("/served-model").json()["version"]


def test_started_before_production_exists_it_waits_for_a_reload(
    server: Process, registry: Registry
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
    mlflow_server: Process, registry: Registry, workdir: Path
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
        wait_for(lambda: "cannot resolve" in auto.get("/served-model").json()["reason"],
                 "a failed first load", timeout=60, process=auto)  # fmt: skip
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
        auto.wait_http("/ping", timeout=60)
        assert served_version(auto) == "1"
        assert predict(auto, RUNBOOK_PAYLOAD) == ("1", pytest.approx(registry.expected["1"]))

        # Polling follows the alias without a reload.
        registry.point("2")
        wait_for(lambda: served_version(auto) == "2", "version 2 by polling", timeout=30,
                 process=auto)  # fmt: skip
        assert predict(auto, RUNBOOK_PAYLOAD) == ("2", pytest.approx(registry.expected["2"]))

        # SIGTERM: uvicorn finishes, runs the shutdown, then exits by the same signal.
        assert auto.stop() in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in auto.log_tail(10)
    finally:
        auto.stop()
        forwarder.cut()
        registry.point("1")


def test_runbook_payload_gets_one_prediction_with_its_version(server: Process, registry: Registry):
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
def test_mlflow_input_formats(server: Process, registry: Registry, payload: dict):
    version, prediction = predict(server, payload)
    assert prediction == pytest.approx(registry.expected[version], abs=TOLERANCE)


def test_csv_input(server: Process, registry: Registry):
    csv = ",".join(FEATURES) + "\n" + ",".join(map(str, RUNBOOK_ROW)) + "\n"
    response = server.post("/invocations", data=csv, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    version = response.headers["X-Model-Version"]
    assert response.json()["predictions"][0] == pytest.approx(registry.expected[version])


def test_served_model_describes_the_pinned_version(server: Process, registry: Registry):
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
def test_reload_needs_the_token(server: Process, registry: Registry, headers: dict):
    serve(server, registry, "1")
    registry.point("2")
    try:
        response = reload(server, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert served_version(server) == "1"
    finally:
        registry.point("1")


def test_reload_follows_the_alias(server: Process, registry: Registry):
    serve(server, registry, "1")
    assert predict(server, RUNBOOK_PAYLOAD) == ("1", pytest.approx(registry.expected["1"]))
    registry.point("2")
    response = reload(server, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"version": "2", "previous_version": "1", "changed": True}
    assert served_version(server) == "2"
    assert predict(server, RUNBOOK_PAYLOAD) == ("2", pytest.approx(registry.expected["2"]))


def test_reload_checks_a_requested_version_against_the_alias(server: Process, registry: Registry):
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


def test_a_version_that_cannot_load_leaves_the_old_one_serving(server: Process, registry: Registry):
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
    server: Process, registry: Registry
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


def test_reload_under_traffic_drops_no_request(server: Process, registry: Registry):
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

    def every_worker_saw(version: str) -> bool:
        seen = {r[0] for r in list(results) if r[3] == version}
        return seen == set(range(len(workers)))

    try:
        wait_for(lambda: every_worker_saw("1"), "an answer to every worker", timeout=30)
        registry.point("2")
        reload_started = time.monotonic()
        response = reload(server, headers=AUTH)
        reload_done = time.monotonic()
        wait_for(lambda: every_worker_saw("2"), "version 2 to every worker", timeout=30)
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


def test_missing_content_type_is_415(server: Process):
    response = server.post("/invocations", data=json.dumps(RUNBOOK_PAYLOAD))
    assert response.status_code == 415
    assert "Content-Type" in response.json()["message"]


def raw_request(server: Process, head: bytes, body: bytes) -> str:
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


def test_declared_oversize_body_is_refused_before_it_is_read(server: Process):
    # Content-Length says 6 MiB but only 1 KiB is sent: the answer cannot wait for the rest.
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 6291456\r\n\r\n"
    )
    assert raw_request(server, head, b" " * 1024).startswith("HTTP/1.1 413")


def test_streamed_oversize_body_is_refused(server: Process):
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
    server: Process, data: str, content_type: str, error_code: str
):
    response = server.post("/invocations", data=data, headers={"Content-Type": content_type})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == error_code
    assert "Traceback" not in response.text
    assert len(body["message"]) <= 600


def test_unknown_paths_and_methods(server: Process):
    assert server.get("/nope").status_code == 404
    assert server.get("/invocations").status_code == 405
    assert server.get("/admin/reload").status_code == 405
