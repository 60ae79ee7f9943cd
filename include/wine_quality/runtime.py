"""What a process of the pipeline reports about itself to the orchestrator.

``hostname()`` is Airflow's ``[core] hostname_callable`` in the local stack
(scripts/airflow-env.sh): on one machine every Celery worker would otherwise record the same
host name on its task instances, and nobody could tell from the records which worker ran what.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """``WINE_WORKER_NAME`` when a worker was given one, else the machine's FQDN."""
    return os.environ.get("WINE_WORKER_NAME") or socket.getfqdn()
