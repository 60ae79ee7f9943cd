"""Buttons from a task instance of ``wine_retraining`` to the MLflow run and model version it names.

The DAG attaches these links only to the tasks that create or use an MLflow run or a registered
model version (``operator_extra_links`` on those tasks), so a task with nothing to link, such as
``ingest``, shows no "Extra Links" at all. In Airflow 3 a task's own links are resolved by the
worker when the task finishes: ``get_link`` reads the task's return value (small dicts naming
``run_id``, ``version``, ``candidate_version``, ...) and Airflow stores the URL in XCom, where
the API server reads it. The base URL is ``WINE_MLFLOW_UI_URL`` (default:
``MLFLOW_TRACKING_URI``) as the task sees it, read when the link is made, not at import.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

from wine_quality.core.config import DAG_ID, MODEL_NAME

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

# Keys of a task's return value that name an MLflow run / a registered model version, in order
# of preference. `production` is what a rollback restored.
RUN_KEYS = ("run_id", "validation_run_id")
VERSION_KEYS = ("version", "candidate_version", "production")


def ui_base() -> str:
    """Base URL of the MLflow UI as a browser sees it."""
    base = os.environ.get("WINE_MLFLOW_UI_URL") or os.environ.get("MLFLOW_TRACKING_URI", "")
    return base.rstrip("/") if base.startswith(("http://", "https://")) else ""


def run_link(value: Any, base: str) -> str:
    """Link to the MLflow run named in a task's return value, or '' if it names none.

    ``#/runs/<id>`` is the MLflow UI's direct run route: it finds the run's experiment itself.
    """
    if not base or not isinstance(value, dict):
        return ""
    run_id = next((value[k] for k in RUN_KEYS if isinstance(value.get(k), str)), None)
    return f"{base}/#/runs/{quote(run_id)}" if run_id else ""


def version_link(value: Any, base: str) -> str:
    """Link to the registered model version named in a task's return value, or ''."""
    if not base or not isinstance(value, dict):
        return ""
    version = next((value[k] for k in VERSION_KEYS if value.get(k) not in (None, "")), None)
    if version is None:
        return ""
    return f"{base}/#/models/{quote(MODEL_NAME)}/versions/{quote(str(version))}"


def _return_value(ti_key: TaskInstanceKey) -> Any:
    # Runs in the worker as the task finishes, through the Task SDK (no metadata DB access).
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key="return_value")


class MlflowRunLink(BaseOperatorLink):
    """Opens the MLflow run the task created or used."""

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if ti_key.dag_id != DAG_ID:
            return ""
        return run_link(_return_value(ti_key), ui_base())


class MlflowModelVersionLink(BaseOperatorLink):
    """Opens the registered model version the task trained, compared, promoted or restored."""

    name = "MLflow model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if ti_key.dag_id != DAG_ID:
            return ""
        return version_link(_return_value(ti_key), ui_base())


class WineMlflowLinksPlugin(AirflowPlugin):
    """Lists the MLflow links on the Plugins page; the DAG attaches them to its tasks.

    Not ``global_operator_extra_links``: those appear on every task of every DAG. Nor
    ``operator_extra_links`` matched by operator class: every TaskFlow task shares one class.
    """

    name = "wine_mlflow_links"
    operator_extra_links = [MlflowRunLink(), MlflowModelVersionLink()]  # noqa: RUF012
