"""The workers' agreement without processes: the target file, its ordering, the status files.

The integration tests (tests/integration/test_model_server_workers.py) run the real thing with
two uvicorn workers; these pin the rules each step relies on, including the failure paths.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wine_quality.serving.__main__ import WORKERS_ENV, parse_args
from wine_quality.serving.workers import (
    STATE_DIR_ENV,
    SharedState,
    Target,
    WorkersLagging,
    WorkerStatus,
    converge,
    lagging,
    wait_to_join,
    wait_until_served,
)


@pytest.fixture
def state(tmp_path: Path) -> SharedState:
    return SharedState(tmp_path, pid=os.getpid())


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_nothing_is_published_at_first(state: SharedState):
    assert state.read_target() is None
    assert state.target_changed() is False
    assert state.statuses() == []


def test_publish_counts_generations_and_writes_whole_documents(state: SharedState):
    first = state.publish("1", resolved_at=10.0)
    assert first == Target(generation=1, version="1", resolved_at=10.0, by_pid=os.getpid())
    assert state.read_target() == first
    second = state.publish("2", resolved_at=11.0)
    assert second.generation == 2
    assert json.loads(state.target_path.read_text())["version"] == "2"
    # Only the target and its lock: every temporary file was renamed over the target.
    assert sorted(p.name for p in state.directory.iterdir()) == ["target.json", "target.lock"]


def test_the_same_version_again_keeps_the_generation(state: SharedState):
    published = state.publish("1", resolved_at=10.0)
    assert state.publish("1", resolved_at=12.0) == published


def test_a_stale_resolution_never_replaces_a_newer_one(state: SharedState):
    # A poll asked the registry at t=10 (answer: 1), a reload at t=11 (answer: 2) published first.
    newer = state.publish("2", resolved_at=11.0)
    assert state.publish("1", resolved_at=10.0) == newer
    assert state.read_target() == newer
    # A resolution that began later wins, whatever it names (here: the alias was removed).
    latest = state.publish(None, resolved_at=12.0)
    assert latest.version is None
    assert latest.generation == newer.generation + 1


def test_target_changed_is_true_once_per_replacement(state: SharedState):
    state.publish("1", resolved_at=1.0)
    assert state.target_changed() is True
    assert state.target_changed() is False
    state.publish("2", resolved_at=2.0)
    assert state.target_changed() is True
    state.forget_stamp()
    assert state.target_changed() is True


def test_statuses_ignore_and_remove_dead_workers(state: SharedState):
    state.write_status("1", 1)
    gone = SharedState(state.directory, pid=dead_pid())
    gone.write_status("1", 1)
    assert gone.status_path(gone.pid).exists()
    assert state.statuses() == [WorkerStatus(os.getpid(), "1", 1)]
    assert not gone.status_path(gone.pid).exists()
    state.remove_status()
    state.remove_status()  # Twice is harmless (shutdown after a crash of the file).
    assert state.statuses() == []


def test_lagging_names_workers_behind_on_generation_or_version():
    target = Target(generation=3, version="2", resolved_at=0.0, by_pid=1)
    statuses = [
        WorkerStatus(1, "2", 3),
        WorkerStatus(2, "1", 2),  # Has not caught up.
        WorkerStatus(3, "1", 3, error="could not load version 2"),  # Caught up, failed to load.
        WorkerStatus(4, "2", 4),  # Already on a newer target naming the same version.
    ]
    assert [s.pid for s in lagging(statuses, target)] == [2, 3]


def test_wait_until_served_times_out_naming_the_laggards(state: SharedState):
    target = state.publish("2", resolved_at=1.0)
    state.write_status("1", 0, error="could not load version 2: boom")
    with pytest.raises(WorkersLagging) as caught:
        asyncio.run(wait_until_served(state, target, timeout=0.2))
    message = str(caught.value)
    assert f"pid {os.getpid()} serves 1 (could not load version 2: boom)" in message
    assert "1 of 1 workers do not serve version 2" in message
    assert caught.value.status == 504


def test_converge_reports_the_target_and_every_worker(state: SharedState):
    assert asyncio.run(converge(state, timeout=0.1)) == {}  # Nothing published yet.
    state.publish("2", resolved_at=1.0)
    state.write_status("2", 1)
    answer = asyncio.run(converge(state, timeout=1))
    assert answer == {"version": "2", "workers": {str(os.getpid()): "2"}}


def test_a_worker_joins_once_its_first_attempt_ends_even_without_a_model(monkeypatch):
    """No alias, or the registry down: every worker then answers 503 with the reason."""
    from wine_quality.serving.settings import ServerSettings
    from wine_quality.serving.slot import ModelSlot, RegistryUnavailable

    slot = ModelSlot(ServerSettings(retry_seconds=60))
    attempts: list[int] = []

    async def sync_fails(requested=None):
        attempts.append(1)
        raise RegistryUnavailable("registry down")

    monkeypatch.setattr(slot, "sync", sync_fails)

    async def start() -> bool:
        loader = asyncio.create_task(slot.keep_in_sync())
        try:
            return await wait_to_join(slot, timeout=5)
        finally:
            loader.cancel()

    assert asyncio.run(start()) is True
    assert attempts == [1]
    assert slot.current is None


def test_a_worker_still_loading_is_held_back_until_the_deadline():
    from wine_quality.serving.settings import ServerSettings
    from wine_quality.serving.slot import ModelSlot

    slot = ModelSlot(ServerSettings())  # Its loader never ran: not settled.
    assert asyncio.run(wait_to_join(slot, timeout=0.2)) is False


def test_state_directory_comes_from_the_environment(tmp_path: Path):
    assert SharedState.from_env({}) is None
    assert SharedState.from_env({STATE_DIR_ENV: " "}) is None
    assert SharedState.from_env({STATE_DIR_ENV: str(tmp_path)}).directory == tmp_path


@pytest.mark.parametrize(
    ("env", "argv", "workers"),
    [
        pytest.param({}, [], 1, id="default-one"),
        pytest.param({WORKERS_ENV: "3"}, [], 3, id="from-env"),
        pytest.param({WORKERS_ENV: "3"}, ["--workers", "2"], 2, id="flag-wins"),
    ],
)
def test_workers_option(monkeypatch, env: dict[str, str], argv: list[str], workers: int):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert parse_args(argv).workers == workers


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        pytest.param({}, ["--workers", "0"], id="zero"),
        pytest.param({WORKERS_ENV: "many"}, [], id="not-a-number"),
        pytest.param({WORKERS_ENV: "-2"}, [], id="negative"),
    ],
)
def test_workers_option_refuses_nonsense(monkeypatch, capsys, env: dict[str, str], argv):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert WORKERS_ENV in capsys.readouterr().err
