"""The live local stack (MLflow server + model server) for the integration tests."""

from __future__ import annotations

import time

import pytest

from tests.integration.stack import Stack, pid_alive, stack_env


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Start the stack with scripts/stack.sh; stop it and prove nothing is left behind."""
    state = tmp_path_factory.mktemp("stack")
    running = Stack(state=state, env=stack_env(state))
    up = running.script("stack.sh", "up", timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    pids = running.pids()
    assert set(pids) == {"mlflow", "model-server"}
    try:
        yield running
    finally:
        down = running.script("stack.sh", "down", timeout=60)
        assert down.returncode == 0, down.stderr
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [name for name, pid in pids.items() if pid_alive(pid)]
