"""Settings every test needs before Airflow or MLflow is imported, and the session's bookkeeping.

Under pytest-xdist (``make test``) every worker is its own process: it imports this file, so it
gets its own throwaway Airflow home, and it hands its reliability rows to the controller, which
writes them once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The canonical UCI file lives beside the repository (never committed): tests read it in place.
SHARED_DATA = REPO.parent / "shared" / "data" / "winequality-red.csv"

# A throwaway Airflow home, so tests never touch ~/airflow or the `make run` state; one per
# process (each xdist worker imports this file), removed when the session ends.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="wine-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def wine_data_path() -> Path:
    """The real data file: WINE_DATA_URI if it is a local path, else the shared copy."""
    configured = os.environ.get("WINE_DATA_URI", "")
    if configured and "://" not in configured:
        return Path(configured)
    return SHARED_DATA


@pytest.fixture(scope="session")
def wine_csv() -> Path:
    """Path of the real wine CSV; a missing file is an error, not a skip."""
    path = wine_data_path()
    if not path.is_file():
        pytest.fail(f"the wine data file {path} is missing: point WINE_DATA_URI at it")
    return path


@pytest.fixture(scope="session")
def wine_frame(wine_csv: Path):
    """The real data as parsed by the pipeline."""
    from wine_quality.data.parse import parse_csv

    return parse_csv(wine_csv.read_bytes(), source=str(wine_csv))


def pytest_collection_modifyitems(config, items):
    """Under xdist, the slow modules first: each goes whole to one worker (``--dist loadfile``),
    and the quick ones fill the gaps at the end instead of waiting for a slow one."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session, exitstatus):
    """Write the reliability rows recorded in this session, if asked to (make reliability)."""
    import json

    from tests.reliability import ROWS

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller writes every worker's rows
        workeroutput["reliability_rows"] = ROWS
        return
    out = os.environ.get("WINE_RELIABILITY_OUT")
    if out and ROWS:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({"exitstatus": int(exitstatus), "rows": ROWS}, indent=2))


def pytest_unconfigure(config):
    """Remove this process's throwaway Airflow home."""
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the xdist controller: collect the rows a finished worker recorded."""
    from tests.reliability import ROWS

    ROWS.extend(getattr(node, "workeroutput", {}).get("reliability_rows", []))
