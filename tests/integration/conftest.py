"""The live local stack (MLflow server + model server) for the integration tests."""

from __future__ import annotations

import pytest

from tests.integration.stack import Stack, running, stack_env


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Start the stack with scripts/stack.sh; stop it and prove nothing is left behind."""
    state = tmp_path_factory.mktemp("stack")
    with running(Stack(state=state, env=stack_env(state))) as live:
        yield live
