"""Drive the real local stack (scripts/stack.sh, scripts/run-dag.sh) from tests.

The same scripts `make run` uses, on free ports and in a throwaway state folder, so the tests
exercise what users run and never disturb a stack a developer has up. The scripts start the
processes and keep their pid files; the harness (tests/integration/harness.py) picks the ports,
cleans the environment and proves at the end that every process is gone.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.integration.harness import REPO, assert_gone, clean_env, descendants, free_port
from wine_quality.core.config import MODEL_NAME, PRODUCTION_ALIAS


@dataclass
class Stack:
    """A running local stack and the environment that reaches it."""

    state: Path
    env: dict[str, str]

    @property
    def tracking_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    @property
    def server_url(self) -> str:
        return self.env["WINE_MODEL_SERVER_URL"]

    def script(self, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(REPO / "scripts" / args[0]), *args[1:]],
            cwd=REPO, env={**self.env, **env}, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def run_dag(self, data_uri: str, conf: dict | None = None) -> tuple[int, dict, str]:
        """Run the DAG once; return (exit code, summary, stdout+stderr)."""
        extra = {"WINE_DATA_URI": data_uri}
        if conf:
            extra["WINE_DAG_CONF"] = json.dumps(conf)
        done = self.script("run-dag.sh", **extra)
        summary_file = self.state / "last-run-summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        return done.returncode, summary, done.stdout + done.stderr

    def pids(self) -> dict[str, int]:
        run = self.state / "run"
        return {p.stem: int(p.read_text()) for p in run.glob("*.pid")} if run.exists() else {}

    def served(self) -> dict:
        return requests.get(f"{self.server_url}/served-model", timeout=5).json()

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def production(self) -> str | None:
        """The version the ``production`` alias names, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return str(
                self.client().get_model_version_by_alias(MODEL_NAME, PRODUCTION_ALIAS).version
            )
        except MlflowException:
            return None

    def versions(self) -> list[str]:
        """Every registered version of the model, in order."""
        found = self.client().search_model_versions(f"name = '{MODEL_NAME}'")
        return sorted((str(v.version) for v in found), key=int)


def task_attempts(output: str, task_id: str) -> int:
    """How many times the run started ``task_id``, read from its full `airflow dags test` log."""
    match = re.search(r"; log: (\S+\.log)", output)
    assert match, output[-2000:]
    text = Path(match.group(1)).read_text(errors="replace")
    return text.count(f"[DAG TEST] starting task_id={task_id} ")


def assert_first_run_promoted(stack: Stack, code: int, summary: dict, output: str) -> None:
    """A first run on the real data: validated, promoted version 1 without asking anyone,
    served it, canary passed."""
    assert code == 0, output[-3000:]
    assert summary["rows"] == 1599
    assert summary["validation"] == "passed"
    assert summary["decision"] == "promote"
    assert summary["promoted_version"] == "1"
    assert summary["served_version"] == "1"
    assert summary["canary"]["passed"] is True
    assert stack.production() == "1"
    assert stack.served()["version"] == "1"
    # `airflow dags test` never waits for the default approval ('on_drift'), and says so.
    assert summary["approval"]["outcome"] == "not_required"
    assert "an `airflow dags test` run does not wait" in summary["approval"]["reason"]
    assert stack.client().get_model_version(MODEL_NAME, "1").tags["approval"] == "not_required"


@contextmanager
def running(stack: Stack, up_timeout: float = 180) -> Iterator[Stack]:
    """`stack.sh up`, yield, `stack.sh down`; then prove no process it ever started is left."""
    up = stack.script("stack.sh", "up", timeout=up_timeout)
    assert up.returncode == 0, up.stdout + up.stderr
    started = stack.pids()
    assert set(started) == {"mlflow", "model-server"}
    # The model server's workers (and uvicorn's helpers) too: `down` must leave none of them.
    children = descendants(set(started.values())) - set(started.values())
    try:
        yield stack
    finally:
        # Tests may restart services: the first processes and the current ones must all be gone.
        pids = {**{f"first {k}": v for k, v in started.items()}, **stack.pids()}
        pids |= {f"child {pid}": pid for pid in children}
        down = stack.script("stack.sh", "down", timeout=90)
        assert down.returncode == 0, down.stderr
        assert_gone(pids)


def stack_env(state: Path) -> dict[str, str]:
    """The scripts' environment for a stack in ``state`` on free ports, without the developer's
    settings, nor their ``.env`` (the scripts would read it for what the environment lacks)."""
    mlflow_port, server_port = free_port(), free_port()
    return clean_env(
        WINE_DOTENV="/dev/null",
        WINE_STATE_DIR=str(state),
        MLFLOW_PORT=str(mlflow_port),
        MODEL_SERVER_PORT=str(server_port),
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{mlflow_port}",
        WINE_MODEL_SERVER_URL=f"http://127.0.0.1:{server_port}",
        VENV=str(Path(sys.executable).parent.parent),
    )
