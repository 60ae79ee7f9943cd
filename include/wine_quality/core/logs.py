"""Send the libraries' log records through the host's logging, at their real level.

On import MLflow gives its ``mlflow`` logger a handler of its own that writes to stderr and
stops propagation. An orchestrator that captures a task's stderr (Airflow shows every stderr
line as ERROR) then mislabels MLflow's INFO lines, and its own formatting and levels never see
them. ``MLFLOW_CONFIGURE_LOGGING=false`` tells MLflow to leave logging to the host, and one
small handler passes its records on to the host's handlers.
"""

from __future__ import annotations

import logging
import os
import sys

MLFLOW_CONFIGURE_LOGGING = "MLFLOW_CONFIGURE_LOGGING"


class _ToHost(logging.Handler):
    """Hands MLflow's records to the root logger's handlers, at their own level.

    Not plain propagation: MLflow silences its own output at times (autolog notices while it
    evaluates a model, its telemetry thread) by switching off its stream or with a filter on
    its own handler; this handler keeps honouring both.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        utils = sys.modules.get("mlflow.utils.logging_utils")
        if utils is not None and (
            not utils.MLFLOW_LOGGING_STREAM.enabled or utils.should_suppress_logs_in_thread.get()
        ):
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


def use_host_logging() -> None:
    """Send MLflow's records to the host's handlers instead of MLflow's stderr handler.

    Call it at the start of a task, preferably before anything imports ``mlflow``: the
    environment variable then stops MLflow from configuring logging at all. If ``mlflow`` was
    imported already, its stderr handler is replaced. An explicit ``MLFLOW_CONFIGURE_LOGGING``
    set by the operator is respected. Idempotent.
    """
    os.environ.setdefault(MLFLOW_CONFIGURE_LOGGING, "false")
    if os.environ[MLFLOW_CONFIGURE_LOGGING].strip().lower() not in ("false", "0"):
        return
    logger = logging.getLogger("mlflow")
    if "mlflow.utils.logging_utils" in sys.modules:
        from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

        for handler in list(logger.handlers):
            if getattr(handler, "stream", None) is MLFLOW_LOGGING_STREAM:
                logger.removeHandler(handler)
    if not any(isinstance(handler, _ToHost) for handler in logger.handlers):
        logger.addHandler(_ToHost())
    logger.propagate = False
