"""MLflow helpers shared by training, evaluation, validation runs and the registry code.

Nothing here changes process-wide state for longer than a ``with`` block: clients are built for
the URI they are given, and :func:`using` is the one place that points MLflow's fluent API
(``mlflow.start_run``, ``log_model``, ``evaluate``, ``pyfunc.load_model`` of ``models:/`` URIs)
at a server, restoring what was there before on exit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from wine_quality.core.runtime import preload

if TYPE_CHECKING:
    from mlflow import MlflowClient

# MLflow mirrors its process-wide URIs into these variables (for child processes) when set.
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def client(tracking_uri: str) -> MlflowClient:
    """A client for the tracking server at ``tracking_uri`` and its registry (the same server)."""
    preload("mlflow")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextlib.contextmanager
def using(tracking_uri: str) -> Iterator[MlflowClient]:
    """Point MLflow's fluent API at ``tracking_uri`` for the block, and yield a client for it.

    On exit the process-wide URIs and their environment variables are what they were before, so
    a caller (a test, a task calling two servers) never inherits another block's server.
    """
    preload("mlflow")
    import mlflow

    saved = {name: os.environ.get(name) for name in _URI_VARIABLES}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield client(tracking_uri)
    finally:
        # Unset the in-process values (None is MLflow's "not set"), then put the variables back:
        # MLflow resolves an unset URI from them, exactly as it did before the block.
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ensure_experiment(mlflow_client: MlflowClient, name: str) -> str:
    """Return the id of experiment ``name``, creating it if needed (safe under races)."""
    from mlflow.exceptions import MlflowException

    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow_client.create_experiment(name)
    except MlflowException:
        # Another task created it between our read and our create.
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def is_not_found(exc: Exception) -> bool:
    """Whether an MLflow error means 'no such model, version or alias' rather than a failure.

    MLflow reports a missing model or version as RESOURCE_DOES_NOT_EXIST but a missing alias of
    an existing model as INVALID_PARAMETER_VALUE ("Registered model alias production not
    found"), so that code counts only with that message.
    """
    code = getattr(exc, "error_code", "")
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    message = str(getattr(exc, "message", exc))
    return code == "INVALID_PARAMETER_VALUE" and "alias" in message and "not found" in message
