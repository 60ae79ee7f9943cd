"""A pipeline process's own concerns: what it reports about itself, how it imports.

``hostname()`` is Airflow's ``[core] hostname_callable`` in the local stack
(scripts/airflow-env.sh): on one machine every Celery worker would otherwise record the same
host name on its task instances, and nobody could tell from the records which worker ran what.

``preload()`` imports the heavy libraries a stage needs with the cyclic garbage collector paused.

``SQLITE_CONNECT_ARGS`` is Airflow's ``[database] sql_alchemy_connect_args`` when its metadata
database is SQLite (scripts/airflow-env.sh).
"""

from __future__ import annotations

import gc
import importlib
import os
import socket
import sys

# How long a SQLite connection waits for another writer before "database is locked" (Python's
# default is 5 s, which concurrent UI requests on a busy machine exceed).
SQLITE_CONNECT_ARGS = {"timeout": 60}


def hostname() -> str:
    """``WINE_WORKER_NAME`` when a worker was given one, else the machine's FQDN."""
    return os.environ.get("WINE_WORKER_NAME") or socket.getfqdn()


def preload(*modules: str) -> None:
    """Import ``modules`` (those not imported yet) with the cyclic garbage collector paused.

    A stage's first imports (MLflow, Great Expectations, scikit-learn: thousands of modules,
    most of a task's few seconds on small data) allocate millions of objects that live as long
    as the process, and the collector's passes over them free nothing: measured here, they are
    about a sixth of the import time (3.3 s -> 2.75 s for MLflow, GX and scikit-learn). The
    collector's state is restored afterwards, and it collects whatever the imports left.
    """
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in missing:
            importlib.import_module(name)
    finally:
        if enabled:
            gc.enable()
