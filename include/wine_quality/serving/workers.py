"""Several worker processes that serve one version: the shared state directory they agree through.

With ``--workers N > 1`` every uvicorn worker holds and swaps its own model, and a reload reaches
only one of them. They agree through a small directory the parent process creates before it
spawns them (named by ``WINE_MODEL_SERVER_STATE_DIR``), so no other service is needed:

- ``target.json``: the version every worker must serve, with a ``generation`` that grows by one
  per publication. Written to a temporary file and renamed over the old one, so a reader sees
  the old document or the new one, never half of one.
- ``worker-<pid>.json``: what one worker serves and the generation it has caught up with.
  Files of processes that are gone are ignored and removed.

The ordering rule, which keeps a stale alias poll from undoing a newer reload: a target carries
the time its resolution in the registry *began*; a publication replaces the target only if it
began resolving later than the target did (the later question saw a registry at least as new),
and a worker swaps only to the version of the newest target it has read. Publications are
serialised by an ``flock`` on ``target.lock``, so two workers cannot both win.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wine_quality.serving.slot import ReloadError

if TYPE_CHECKING:
    from wine_quality.serving.app import ModelServer
    from wine_quality.serving.slot import ModelSlot

logger = logging.getLogger(__name__)

STATE_DIR_ENV = "WINE_MODEL_SERVER_STATE_DIR"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TARGET_FILE = "target.json"
LOCK_FILE = "target.lock"
STATUS_PREFIX = "worker-"
# How often a worker looks for a new target: one stat() per round, so cheap; it bounds how long
# the other workers lag behind the one that took the reload.
FOLLOW_SECONDS = 0.05
# After a failed load of the target, wait this long before the next attempt.
FOLLOW_RETRY_SECONDS = 1.0
# A worker whose first load hangs takes connections after this long anyway (and answers 503):
# within stack.sh's 90 s wait for the server, so a hung registry shows as a reason, not a hang.
JOIN_SECONDS = 60.0


@dataclass(frozen=True)
class Target:
    """The version every worker must serve (None: nothing), and when its resolution began."""

    generation: int
    version: str | None
    resolved_at: float
    by_pid: int


@dataclass(frozen=True)
class WorkerStatus:
    """What one worker serves, the target generation it caught up with, and its last error."""

    pid: int
    version: str | None
    generation: int
    error: str | None = None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a worker that died leaves its file behind)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Exists, owned by someone else.
        return True
    return True


def _write_atomic(path: Path, document: dict[str, Any]) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(document, file)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


class SharedState:
    """One worker's view of the state directory: the target, and every worker's status."""

    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.directory = directory
        self.pid = os.getpid() if pid is None else pid
        self._target_stamp: tuple[int, int] | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SharedState | None:
        """The state directory the parent named, or None in a single-worker server."""
        raw = (os.environ if env is None else env).get(STATE_DIR_ENV, "").strip()
        return cls(Path(raw)) if raw else None

    @property
    def target_path(self) -> Path:
        return self.directory / TARGET_FILE

    def status_path(self, pid: int) -> Path:
        return self.directory / f"{STATUS_PREFIX}{pid}.json"

    def read_target(self) -> Target | None:
        """The published target, or None before the first publication."""
        document = _read_json(self.target_path)
        if document is None:
            return None
        return Target(
            generation=int(document["generation"]),
            version=document["version"],
            resolved_at=float(document["resolved_at"]),
            by_pid=int(document["by_pid"]),
        )

    def target_changed(self) -> bool:
        """Whether the target file was replaced since the last call: one ``stat``, no read."""
        try:
            info = self.target_path.stat()
        except FileNotFoundError:
            return False
        stamp = (info.st_ino, info.st_mtime_ns)  # A rename always brings a new inode.
        changed, self._target_stamp = stamp != self._target_stamp, stamp
        return changed

    def forget_stamp(self) -> None:
        """Make the next ``target_changed`` say yes (to retry a target that failed to load)."""
        self._target_stamp = None

    def publish(self, version: str | None, resolved_at: float) -> Target:
        """Make ``version`` the target, unless a resolution that began later is already there.

        Args:
            version: What the alias named (None: no version has it).
            resolved_at: ``time.time()`` when this worker began to ask the registry.

        Returns:
            The target afterwards: this one, or the newer one that stays (the caller serves its
            own version only if it equals the returned target's). Publishing the version the
            target already names changes nothing, so its generation stays too.
        """
        with open(self.directory / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = self.read_target()
                if current is not None and (
                    current.resolved_at > resolved_at or current.version == version
                ):
                    return current
                target = Target(
                    generation=(current.generation if current else 0) + 1,
                    version=version,
                    resolved_at=resolved_at,
                    by_pid=self.pid,
                )
                _write_atomic(self.target_path, asdict(target))
                return target
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write_status(self, version: str | None, generation: int, error: str | None = None) -> None:
        """Record what this worker serves (atomically: the waiting worker may read it now)."""
        status = WorkerStatus(self.pid, version, generation, error)
        _write_atomic(self.status_path(self.pid), asdict(status))

    def remove_status(self) -> None:
        """Forget this worker (at shutdown), so a reload does not wait for it."""
        with contextlib.suppress(FileNotFoundError):
            self.status_path(self.pid).unlink()

    def statuses(self) -> list[WorkerStatus]:
        """Every live worker's status, by pid; files of dead processes are removed."""
        found: list[WorkerStatus] = []
        for path in self.directory.glob(f"{STATUS_PREFIX}*.json"):
            document = _read_json(path)
            if document is None:
                continue  # Being written for the first time: mkstemp names never match.
            status = WorkerStatus(**document)
            if not pid_alive(status.pid):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            found.append(status)
        return sorted(found, key=lambda status: status.pid)


class WorkersLagging(ReloadError):
    """Some workers did not serve the target in time (those that did, serve it already)."""

    status = 504
    code = "WORKERS_LAGGING"


def lagging(statuses: list[WorkerStatus], target: Target) -> list[WorkerStatus]:
    """The workers that do not serve ``target`` yet."""
    return [
        status
        for status in statuses
        if status.generation < target.generation or status.version != target.version
    ]


async def wait_until_served(
    state: SharedState, target: Target, timeout: float
) -> tuple[Target, list[WorkerStatus]]:
    """Wait until every live worker serves ``target`` (or a newer target, if one comes).

    Returns:
        The target they serve, and every live worker's status once none lags.

    Raises:
        WorkersLagging: Some still lag after ``timeout`` seconds; the message names them.
    """
    deadline = time.monotonic() + timeout
    while True:
        newest = await asyncio.to_thread(state.read_target)
        if newest is not None and newest.generation > target.generation:
            target = newest  # Another reload came after this one: wait for it instead.
        statuses = await asyncio.to_thread(state.statuses)
        behind = lagging(statuses, target)
        if not behind:
            return target, statuses
        if time.monotonic() > deadline:
            names = ", ".join(
                f"pid {s.pid} serves {s.version}" + (f" ({s.error})" if s.error else "")
                for s in behind
            )
            raise WorkersLagging(
                f"after {timeout:g} s, {len(behind)} of {len(statuses)} workers do not serve"
                f" version {target.version} yet: {names}"
            )
        await asyncio.sleep(FOLLOW_SECONDS / 2)


async def converge(state: SharedState, timeout: float) -> dict[str, Any]:
    """After a reload: wait until every worker serves the published target.

    Returns:
        The reload answer's additions: the target's ``version`` (a newer reload may have
        overtaken this one) and ``workers``, pid -> version; nothing before any publication.

    Raises:
        WorkersLagging: See :func:`wait_until_served`.
    """
    target = await asyncio.to_thread(state.read_target)
    if target is None:
        return {}
    target, statuses = await wait_until_served(state, target, timeout)
    return {"version": target.version, "workers": {str(s.pid): s.version for s in statuses}}


async def describe(state: SharedState) -> list[dict[str, Any]]:
    """The ``workers`` list of ``/served-model``: what each live worker serves."""
    statuses = await asyncio.to_thread(state.statuses)
    return [{"pid": s.pid, "version": s.version, "generation": s.generation} for s in statuses]


async def wait_to_join(slot: ModelSlot, timeout: float = JOIN_SECONDS) -> bool:
    """Hold a starting worker back from the shared socket until it has settled.

    Every worker accepts from one listening socket, and uvicorn starts accepting in a worker
    only once its lifespan startup returns. A worker that accepted while still loading would
    answer 503 "starting" next to one that already serves, so a client (or ``stack.sh up``)
    that saw the server ready could still be refused: after a restart, or when uvicorn
    replaces a dead worker. Settled means it serves a version, or its first attempt ended
    without one (no alias, registry down): then every worker answers 503 with the reason.

    Returns:
        Whether it settled; False after ``timeout`` seconds (it takes connections anyway).
    """
    try:
        await asyncio.wait_for(slot.settled.wait(), timeout)
    except TimeoutError:
        logger.warning("worker %s still loading after %g s; taking requests", os.getpid(), timeout)
        return False
    return True


@contextlib.asynccontextmanager
async def taking_part(slot: ModelSlot) -> AsyncIterator[None]:
    """A worker's part in the agreement while the server runs; nothing for a lone worker.

    It is counted from the start (a reload waits for it too), follows the other workers'
    targets, takes connections only once it has settled (:func:`wait_to_join`), and is
    forgotten at shutdown so that no reload waits for it any more.
    """
    state = slot.shared
    if state is None:
        yield
        return
    slot.record_status()
    follower = asyncio.create_task(follow_target(slot, state), name="target-follower")
    try:
        await wait_to_join(slot)
        yield
    finally:
        await cancel(follower)
        state.remove_status()


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel a background loop and wait until it has ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def follow_target(slot: ModelSlot, state: SharedState) -> None:
    """Background loop of every worker: load and swap in each target another worker published."""
    while True:
        delay = FOLLOW_SECONDS
        try:
            if state.target_changed():
                target = await asyncio.to_thread(state.read_target)
                if target is not None and target.generation > slot.generation:
                    await slot.adopt(target)
        except ReloadError:
            state.forget_stamp()  # Read it again after the pause, and retry.
            delay = FOLLOW_RETRY_SECONDS
        # A bug here must not end the loop: this worker would never follow again.
        except Exception:
            logger.exception("following the shared target failed; trying again")
            state.forget_stamp()
            delay = FOLLOW_RETRY_SECONDS
        await asyncio.sleep(delay)


def create_worker_app() -> ModelServer:
    """uvicorn's factory in each of several workers: settings and the shared state directory
    from the environment the parent prepared, logging at the level uvicorn was given."""
    from wine_quality.serving.app import ModelServer
    from wine_quality.serving.settings import ServerSettings

    # A spawned worker starts with bare logging: only uvicorn's own loggers are configured.
    logging.basicConfig(level=logging.getLogger("uvicorn").getEffectiveLevel(), format=LOG_FORMAT)
    shared = SharedState.from_env()
    if shared is None:
        raise RuntimeError(f"{STATE_DIR_ENV} is not set: start the server with --workers N")
    return ModelServer(ServerSettings.from_env(), shared)
