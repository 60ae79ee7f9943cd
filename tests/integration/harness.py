"""The one harness for every process a test starts: ports, environment, processes, waits, teardown.

- :func:`free_port`: a free loopback port from this pytest worker's own block, below the
  kernel's ephemeral range, so parallel workers and outgoing connections never take it first.
- :func:`clean_env`: the environment a child process gets.
- :class:`Process`: a process started in its own session, its log file and (if it serves
  HTTP) its base URL; :meth:`Process.stop` is the one teardown, :func:`kill_group` under it.
- :func:`wait_for`: the one polling helper (condition, deadline, early failure with the log
  tail when the process it waits on has died).
- :func:`pid_alive`, :func:`descendants` and :func:`assert_gone`: for processes started by the
  scripts (pid files).

Hand-written rather than mirakuru's executors: mirakuru merges ``os.environ`` into every child
(the settings :func:`clean_env` removes would come back), returns no exit code from ``stop()``,
and SIGTERMs a group's stragglers without the SIGKILL that guarantees nothing is left; the
PostgreSQL cluster (pg_ctl, runuser) and the scripts' pid-file processes do not fit it at all.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# What a child needs to import the package and the tests (model server, helper children).
PYTHONPATH = os.pathsep.join([str(REPO / "include"), str(REPO)])

T = TypeVar("T")

# --- ports ---------------------------------------------------------------------------------------

# Below Linux's default ephemeral range (32768-60999): the kernel never hands these out to
# outgoing connections, so a port stays free between picking it and the service binding it.
_PORTS = range(20000, 32000)


def _port_block() -> Iterator[int]:
    """This process's ports: one block per pytest-xdist worker, scanned from a random start."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    size = len(_PORTS) // max(workers, 1)
    block = range(_PORTS.start + index * size, _PORTS.start + (index + 1) * size)
    start = random.randrange(len(block))
    return itertools.cycle([*block[start:], *block[:start]])


_ports = _port_block()


def free_port() -> int:
    """A loopback port nobody is bound to; this process hands each one out once per cycle of
    its block (thousands), so two services of one run never get the same port."""
    for port in _ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("unreachable: the port cycle is endless")


# --- environment ---------------------------------------------------------------------------------

# A child must not inherit the developer's settings: cloud keys (AWS_), MLflow's and Airflow's
# configuration (MLFLOW_, AIRFLOW*, _AIRFLOW), the project's (WINE_), libpq's (PG*: PGHOST,
# PGPASSWORD would redirect psycopg2 and pg_ctl), nor the names scripts/stack.sh reads as
# settings: any of them would point a test's process at the developer's services or data.
_INHERITED_PREFIXES = ("AWS_", "MLFLOW_", "AIRFLOW", "_AIRFLOW", "WINE_", "PG")
_INHERITED_NAMES = {"BACKEND_URI", "ARTIFACT_ROOT", "MODEL_SERVER_HOST", "MODEL_SERVER_PORT",
                    "VENV", "PYTHONPATH"}  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the developer's service settings, the venv first on PATH,
    plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_INHERITED_PREFIXES) and key not in _INHERITED_NAMES
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


# --- processes and teardown ----------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process (e.g. PostgreSQL run as postgres)
        pass
    return _proc_state(pid) not in ("Z", "X")


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "X"


def kill_group(pgid: int, timeout: float = 10, leader: subprocess.Popen | None = None) -> None:
    """SIGTERM a process group, wait until it is empty, then SIGKILL whatever is left.

    ``leader``, if it is our child, is reaped while waiting: as a zombie it would keep the
    group alive in the eyes of ``killpg``.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if leader is not None:
                leader.poll()
            try:
                os.killpg(pgid, 0)  # zombies count: a test may check the group is empty
            except ProcessLookupError:
                return
            time.sleep(0.1)


def descendants(pids: set[int]) -> set[int]:
    """``pids`` and every process below them, from /proc."""
    children: dict[int, set[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, set()).add(int(stat.parent.name))
    found, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def assert_gone(pids: Mapping[str, int], timeout: float = 10) -> None:
    """Wait until none of ``pids`` (name -> pid) is alive; fail naming the ones that are."""

    def survivors() -> list[str]:
        return [name for name, pid in pids.items() if pid_alive(pid)]

    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not survivors(), "every process to exit", timeout=timeout)
    assert not survivors(), f"still running: {survivors()}"


@dataclass
class Process:
    """A process a test started in its own session (its pid is its group), with its log file.

    ``url`` is its base URL if it serves HTTP; ``notes`` is what a test recorded about it.
    """

    name: str
    popen: subprocess.Popen
    log: Path
    url: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(
        cls, name: str, args: list[str], log: Path, *, env: Mapping[str, str] | None = None,
        url: str = "", cwd: Path = REPO,
    ) -> Process:  # fmt: skip
        """Start ``args`` with ``env`` (default: :func:`clean_env`), output appended to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args, cwd=cwd, env=dict(env) if env is not None else clean_env(),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        return cls(name=name, popen=popen, log=log, url=url)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15) -> int | None:
        """Stop the whole process group (SIGTERM, then SIGKILL); the leader's exit code."""
        kill_group(self.popen.pid, timeout, leader=self.popen)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        return self.popen.returncode

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=kwargs.pop("timeout", 10), **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(f"{self.url}{path}", timeout=kwargs.pop("timeout", 30), **kwargs)

    def wait_http(self, path: str, status: int = 200, timeout: float = 60) -> requests.Response:
        """Until ``GET path`` answers ``status``; that answer."""

        def answered() -> list[requests.Response]:  # a Response is falsy when it is a 4xx/5xx
            answer = self.get(path, timeout=5)
            return [answer] if answer.status_code == status else []

        return wait_for(answered, f"{status} on {path}", timeout=timeout, process=self)[0]


# --- waiting -------------------------------------------------------------------------------------


@contextlib.contextmanager
def stopped_after(server: Any) -> Iterator[Any]:
    """Yield a started service (anything with ``.process`` and ``.stop()``); then stop it and
    prove its process is gone, whatever the test did."""
    try:
        yield server
    finally:
        server.stop()
        assert not pid_alive(server.process.pid)


def wait_for(
    condition: Callable[[], T],
    what: str,
    *,
    timeout: float = 60,
    every: float = 0.2,
    process: Process | None = None,
    ignore: tuple[type[BaseException], ...] = (requests.RequestException, OSError),
) -> T:
    """Poll ``condition`` until it returns something truthy; return that.

    Errors of the types in ``ignore`` count as "not yet" (a service coming up refuses
    connections for a while). With ``process``, its death ends the wait at once.

    Raises:
        RuntimeError: ``process`` exited before the condition held (message: its log tail).
        TimeoutError: The deadline passed (message: the last answer or error, the log tail).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if process is not None and not process.alive():
            raise RuntimeError(
                f"{process.name} exited ({process.popen.returncode}) while waiting for {what}:\n"
                f"{process.log_tail()}"
            )
        try:
            result = condition()
        except ignore as exc:
            result, last = None, exc
        else:
            last = result
        if result:
            return result
        if time.monotonic() >= deadline:
            tail = f":\n{process.log_tail()}" if process is not None else ""
            raise TimeoutError(f"no {what} within {timeout:g} s (last: {last!r}){tail}")
        time.sleep(every)
