"""Small MLflow helpers shared by training, evaluation and the registry code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient


def client(tracking_uri: str) -> MlflowClient:
    """Point the fluent API at ``tracking_uri`` and return a client for it.

    The registry lives on the same server, so both URIs are set together.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """Return the id of experiment ``name``, creating it if needed (safe under races)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking_uri)
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
    """Whether an MLflow error means 'no such resource' (e.g. an alias that is not set).

    MLflow reports a missing model as RESOURCE_DOES_NOT_EXIST but a missing alias as
    INVALID_PARAMETER_VALUE ("Registered model alias production not found").
    """
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
    )
