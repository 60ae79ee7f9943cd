"""scripts/airflow-env.sh: the SQLite metadata database waits for other writers long enough.

Python's sqlite3 gives up after 5 s with "database is locked"; in CI the UI's unpause (sent
alongside the trigger) lost that race once and the DAG stayed paused. Airflow itself opening the
database with these settings is checked by the Airflow stacks of the integration tests.
"""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VARIABLES = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC",
)


def sourced(tmp_path: Path, **env: str) -> dict[str, str]:
    script = ". scripts/airflow-env.sh >/dev/null; env -0"
    done = subprocess.run(
        ["bash", "-c", script], cwd=REPO, capture_output=True, check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WINE_STATE_DIR": str(tmp_path)}
        | env,
    )  # fmt: skip
    return dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)


def test_sqlite_gets_a_busy_timeout_well_past_pythons_five_seconds(tmp_path):
    found = sourced(tmp_path)
    assert found["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    for name in VARIABLES:
        module, _, attribute = found[name].rpartition(".")
        args = getattr(importlib.import_module(module), attribute)
        assert args["timeout"] >= 30


def test_other_databases_get_no_sqlite_arguments(tmp_path):
    conn = "postgresql+psycopg2://airflow@127.0.0.1:5432/airflow"
    found = sourced(tmp_path, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=conn)
    assert found["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == conn
    assert not set(VARIABLES) & found.keys()
