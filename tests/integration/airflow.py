"""Drive a running Airflow (scripts/airflow.sh, as `make airflow` does) through its REST API.

The same script a user runs, on free ports and in the test's own state folder next to the local
stack (tests/integration/stack.py), so the scheduler, the UI and the Celery tests exercise what
people use. Everything is asked through the public REST API (``/api/v2``) with the admin login.
"""

from __future__ import annotations

import functools
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.integration.harness import assert_gone, descendants, free_port, wait_for
from tests.integration.stack import Stack
from wine_quality.core.config import DAG_ID

TERMINAL = {"success", "failed"}
# How long a test reads an approval request before answering it (see AirflowApi.answer).
READING_SECONDS = 3


@dataclass
class AirflowApi:
    """The REST API of a running Airflow, logged in as ``admin``."""

    base_url: str
    password: str
    _token: str = field(default="", repr=False)

    def _headers(self) -> dict[str, str]:
        if not self._token:
            answer = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": "admin", "password": self.password},
                timeout=30,
            )
            answer.raise_for_status()
            self._token = answer.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self._headers(), **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.base_url}/api/v2{path}", headers=headers, timeout=30, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> Any:
        answer = self.request("GET", path, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def wait_for_dag(self, dag_id: str = DAG_ID, timeout: float = 120) -> dict:
        """Until the DAG processor has parsed ``dag_id`` (a fresh home starts empty)."""

        def parsed() -> dict | None:
            answer = self.request("GET", f"/dags/{dag_id}")
            return answer.json() if answer.status_code == 200 else None

        return wait_for(parsed, f"{dag_id} parsed", timeout=timeout, every=1, ignore=())

    def set_paused(self, paused: bool, dag_id: str = DAG_ID) -> None:
        answer = self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})
        answer.raise_for_status()

    def trigger(self, conf: dict | None = None, dag_id: str = DAG_ID) -> str:
        """Trigger a manual run (as the UI form does); return its run id."""
        answer = self.request(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["dag_run_id"]

    def run(self, run_id: str, dag_id: str = DAG_ID) -> dict:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str = DAG_ID) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns", params={"order_by": "run_after"})["dag_runs"]

    def wait_run(self, run_id: str, timeout: float = 300, dag_id: str = DAG_ID) -> dict:
        """Until the run ends; return it. A timeout fails with the task states so far."""
        try:
            return wait_for(
                lambda: (run := self.run(run_id, dag_id))["state"] in TERMINAL and run,
                f"end of run {run_id}", timeout=timeout, every=1, ignore=(),
            )  # fmt: skip
        except TimeoutError:
            states = self.states(run_id, dag_id)
            raise TimeoutError(f"run {run_id} did not end within {timeout:g} s: {states}") from None

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def states(self, run_id: str, dag_id: str = DAG_ID) -> dict[str, str | None]:
        return {t["task_id"]: t["state"] for t in self.task_instances(run_id, dag_id)}

    def post(self, path: str, **kwargs: Any) -> Any:
        answer = self.request("POST", path, **kwargs)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def hitl_path(self, run_id: str, task_id: str, dag_id: str = DAG_ID) -> str:
        """Where a task's Human-in-the-loop request is read and answered (map index -1)."""
        return f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"

    def task_instance(self, run_id: str, task_id: str, dag_id: str = DAG_ID) -> dict:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def wait_for_question(
        self, run_id: str, task_id: str, timeout: float = 180, dag_id: str = DAG_ID
    ) -> dict:
        """Until ``task_id`` waits for an answer (awaiting_input); its request, as people see it."""

        def asked() -> dict | None:
            states = self.states(run_id, dag_id)
            done = ("success", "failed", "skipped", "upstream_failed")
            assert states.get(task_id) not in done, f"{task_id} never asked: {states}"
            if states.get(task_id) != "awaiting_input":
                return None
            return self.get(self.hitl_path(run_id, task_id, dag_id))

        return wait_for(asked, f"{task_id} to ask", timeout=timeout, every=1, ignore=())

    def answer(self, run_id: str, task_id: str, option: str, dag_id: str = DAG_ID) -> dict:
        """Answer a waiting task's request as ``admin``, as a person does under Required
        Actions; the answer as recorded, once the task has taken it.

        Airflow 3.3.2 can lose an answer given before the scheduler has handled the end of the
        attempt that asked (the worker reports it up to seconds after the question appears):
        it takes the resumed task for one killed externally and retries it, and the retry asks
        again. A person then sees the question again and answers it again; so does this, once.
        Like a person, it reads the question for a moment first, which mostly avoids that.
        """
        time.sleep(READING_SECONDS)
        for _ in range(2):
            asking = self.task_instance(run_id, task_id, dag_id)["try_number"]
            answered = self.request(
                "PATCH", self.hitl_path(run_id, task_id, dag_id), json={"chosen_options": [option]}
            )
            assert answered.status_code == 200, answered.text
            outcome = functools.partial(self._after_answer, run_id, task_id, asking, dag_id)
            what = f"{task_id} to take the answer {option}"
            if wait_for(outcome, what, timeout=120, every=1, ignore=()) == "taken":
                return answered.json()
        raise AssertionError(f"{task_id} asked a third time: {self.states(run_id, dag_id)}")

    def _after_answer(self, run_id: str, task_id: str, asking: int, dag_id: str) -> str | None:
        """Whether the task took the answer (ended) or a new try asks again; None: not yet."""
        ti = self.task_instance(run_id, task_id, dag_id)
        if ti["state"] in ("success", "failed", "skipped"):
            return "taken"
        if ti["try_number"] > asking and ti["state"] == "awaiting_input":
            return "asked again"
        return None

    def asset(self, name: str) -> dict:
        """The asset registered under ``name``."""
        found = self.get("/assets", params={"name_pattern": name})["assets"]
        assert [a["name"] for a in found] == [name], found
        return found[0]

    def xcom(self, run_id: str, task_id: str, dag_id: str = DAG_ID) -> Any:
        """A task's return value, as the API server deserialises it."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.get(path, params={"deserialize": True})["value"]


def airflow_env(stack: Stack, **extra: str) -> dict[str, str]:
    """The stack's environment plus a free API port and a known admin password."""
    return {
        "AIRFLOW_API_PORT": str(free_port()),
        "WINE_AIRFLOW_PASSWORD": secrets.token_urlsafe(12),
        **extra,
    }


def listening_addresses(pids: set[int]) -> set[str]:
    """The local addresses on which any of ``pids`` (or their children) listens, from /proc."""
    inodes: set[str] = set()
    for pid in descendants(pids):
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                target = fd.readlink().as_posix() if fd.is_symlink() else ""
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found: set[str] = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                found.add(_address(cols[1], width))
    return found


def _address(hex_addr: str, width: int) -> str:
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    if width == 8:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        ip = socket.inet_ntop(socket.AF_INET6, words)
    return f"{ip}:{int(port, 16)}"


@contextmanager
def airflow_running(stack: Stack, timeout: float = 240, **extra: str) -> Iterator[AirflowApi]:
    """`airflow.sh up` beside ``stack``; yield its API; `airflow.sh down`, and prove it all ended.

    ``extra`` environment (executor, metadata database, ...) applies to every Airflow process.
    """
    env = airflow_env(stack, **extra)
    stack.env.update(env)
    before = set(stack.pids())
    up = stack.script("airflow.sh", "up", timeout=timeout)
    assert up.returncode == 0, up.stdout + up.stderr[-4000:]
    api = AirflowApi(
        base_url=f"http://127.0.0.1:{env['AIRFLOW_API_PORT']}",
        password=env["WINE_AIRFLOW_PASSWORD"],
    )
    started: dict[str, int] = {}
    try:
        started = {k: v for k, v in stack.pids().items() if k not in before}
        yield api
    finally:
        started.update({k: v for k, v in stack.pids().items() if k not in before})
        down = stack.script("airflow.sh", "down", timeout=180)
        assert down.returncode == 0, down.stderr
        assert_gone(started, timeout=20)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(env["AIRFLOW_API_PORT"]))) != 0
