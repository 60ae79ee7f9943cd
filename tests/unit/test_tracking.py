"""MLflow's process-wide URIs: set only inside ``tracking.using``, and put back on exit."""

from __future__ import annotations

import os

import pytest

from wine_quality.core.tracking import client, is_not_found, using


@pytest.mark.parametrize("before", [None, "http://127.0.0.1:9/before"], ids=["unset", "set"])
def test_using_restores_the_uris_and_their_variables(monkeypatch, before):
    import mlflow

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        if before is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, before)
    outside = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    with using("http://127.0.0.1:9/inside") as inside:
        assert mlflow.get_tracking_uri() == "http://127.0.0.1:9/inside"
        assert mlflow.get_registry_uri() == "http://127.0.0.1:9/inside"
        assert inside.tracking_uri == "http://127.0.0.1:9/inside"
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == outside
    assert os.environ.get("MLFLOW_TRACKING_URI") == before
    assert os.environ.get("MLFLOW_REGISTRY_URI") == before


def test_using_restores_after_an_error():
    import mlflow

    outside = mlflow.get_tracking_uri()
    with pytest.raises(RuntimeError), using("http://127.0.0.1:9/inside"):
        raise RuntimeError("boom")
    assert mlflow.get_tracking_uri() == outside


def test_a_client_changes_no_global():
    import mlflow

    outside = mlflow.get_tracking_uri()
    assert client("http://127.0.0.1:9/other").tracking_uri == "http://127.0.0.1:9/other"
    assert mlflow.get_tracking_uri() == outside


class _Error(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error_code, self.message = code, message


@pytest.mark.parametrize(
    ("code", "message", "missing"),
    [
        ("RESOURCE_DOES_NOT_EXIST", "Registered Model with name=X not found", True),
        ("INVALID_PARAMETER_VALUE", "Registered model alias production not found.", True),
        ("INVALID_PARAMETER_VALUE", "Invalid value 'x' for parameter 'version'", False),
        ("INTERNAL_ERROR", "alias not found", False),
    ],
    ids=["no-model", "no-alias", "bad-parameter", "server-error"],
)
def test_not_found_means_no_such_model_or_alias(code, message, missing):
    assert is_not_found(_Error(code, message)) is missing
