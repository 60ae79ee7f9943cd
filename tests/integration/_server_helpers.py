"""Real processes for the model-server tests: an MLflow server, model servers, a registry.

Every process starts in its own session, so stopping it stops its children too (``mlflow
server`` runs uvicorn workers under it), and a failing test leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TOKEN = "test-reload-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    """A process the tests started, its base URL and its log file."""

    name: str
    process: subprocess.Popen
    url: str
    log: Path
    stopped: bool = False
    # What the tests recorded about it, e.g. its first answers.
    notes: dict[str, Any] = field(default_factory=dict)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM the process group, then SIGKILL what is left; the leader's exit code."""
        if self.stopped:
            return self.process.returncode
        self.stopped = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        # Children may outlive the leader; the group id is the leader's pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        return self.process.returncode

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=kwargs.pop("timeout", 10), **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(f"{self.url}{path}", timeout=kwargs.pop("timeout", 30), **kwargs)


def start(name: str, cmd: list[str], env: dict[str, str], log_dir: Path, url: str) -> Service:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    return Service(name=name, process=process, url=url, log=log)


def wait_until(
    check: Callable[[], Any], service: Service, what: str, timeout: float = 30, every: float = 0.2
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the service's log if not."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(
                f"{service.name} exited ({service.process.returncode}) while waiting for {what}:\n"
                + service.log_tail()
            )
        try:
            result = check()
        except requests.RequestException as exc:
            result, last = None, exc
        if result:
            return result
        time.sleep(every)
    raise AssertionError(
        f"{service.name}: no {what} within {timeout:g} s (last: {last}):\n{service.log_tail()}"
    )


def wait_status(service: Service, path: str, status: int = 200, timeout: float = 30) -> None:
    wait_until(lambda: service.get(path, timeout=2).status_code == status, service,
               f"{status} on {path}", timeout)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without MLflow/Airflow/wine settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "WINE_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "include"), str(REPO)])
    env.update(extra)
    return env


def start_mlflow(state: Path, port: int, log_dir: Path, name: str = "mlflow") -> Service:
    """An MLflow tracking server on ``port`` whose data lives in ``state``."""
    state.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{state / 'mlflow.db'}",
        "--artifacts-destination", str(state / "artifacts"), "--serve-artifacts",
    ]  # fmt: skip
    env = clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    return start(name, cmd, env, log_dir, f"http://127.0.0.1:{port}")


def start_model_server(
    tracking_uri: str, log_dir: Path, name: str, *, token: str = "", **settings: str
) -> Service:
    """``python -m wine_quality.serving`` on a free port; ``settings`` are extra env variables."""
    port = free_port()
    cmd = [sys.executable, "-m", "wine_quality.serving", "--port", str(port)]
    env = clean_env(
        MLFLOW_TRACKING_URI=tracking_uri,
        WINE_MODEL_SERVER_TOKEN=token,
        # Fail fast in tests; the server's own retry loop is what is being tested.
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        **settings,
    )
    return start(name, cmd, env, log_dir, f"http://127.0.0.1:{port}")


class CuttableProxy:
    """A TCP forwarder in front of a real server that can be cut like a pulled cable.

    Cutting closes the listening socket (new connections are refused) and every open
    connection (requests in flight fail, pooled keep-alive connections die). ``cut_when``
    cuts once, by itself, as soon as a client sends bytes it matches, before they are
    forwarded, so the fault lands at a chosen point of the protocol whatever the machine's
    speed.
    """

    def __init__(self, target_port: int, cut_when: Callable[[bytes], bool] | None = None) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.cut_when = cut_when
        self.cut_at: str | None = None  # the request line that triggered the cut
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def start(self) -> None:
        """Listen (again) on the same port."""
        listener = socket.create_server(("127.0.0.1", self.port))
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            doomed, self._open = self._open, set()
        for sock in ([listener] if listener else []) + list(doomed):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on it
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                ready, _, _ = select.select([listener], [], [], 0.2)
                if not ready:
                    if self._listener is not listener:
                        return
                    continue
                downstream, _ = listener.accept()
            except (OSError, ValueError):  # closed by cut()
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    downstream.close()
                    upstream.close()
                    return
                self._open.update((downstream, upstream))
            threading.Thread(target=self._pipe, args=(downstream, upstream), daemon=True).start()

    def _pipe(self, downstream: socket.socket, upstream: socket.socket) -> None:
        peers = {downstream: upstream, upstream: downstream}
        try:
            while True:
                readable, _, _ = select.select(list(peers), [], [], 60)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is downstream and self.cut_when and self.cut_when(data):
                        # One shot: once restored, the path stays up.
                        self.cut_when = None
                        self.cut_at = data.split(b"\r\n", 1)[0].decode(errors="replace")
                        self.cut()
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in peers:
                with self._lock:
                    self._open.discard(sock)
                sock.close()


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

    from wine_quality.config import FEATURES, MODEL_NAME, RUNBOOK_PAYLOAD
    from wine_quality.tracking import ensure_experiment, using

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
