"""Fixtures several integration modules share: the live local stack, a PostgreSQL cluster."""

from __future__ import annotations

import pytest

from tests.integration.services import start_postgres
from tests.integration.stack import Stack, running, stack_env


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Start the stack with scripts/stack.sh; stop it and prove nothing is left behind."""
    state = tmp_path_factory.mktemp("stack")
    with running(Stack(state=state, env=stack_env(state))) as live:
        yield live


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster with the mlflow and airflow databases, gone afterwards."""
    # Airflow 3.3 derives an async metadata engine from sql_alchemy_conn; on PostgreSQL it needs
    # asyncpg, or every airflow command fails at import: fail here, clearly, if it is missing.
    import asyncpg  # noqa: F401
    import psycopg2  # noqa: F401

    cluster = start_postgres()
    try:
        yield cluster
    finally:
        cluster.destroy()
        assert not cluster.running()
        assert not cluster.root.exists()
