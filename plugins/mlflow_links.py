"""Airflow plugin: buttons on every task instance that open its MLflow run and model version.

A task of ``wine_retraining`` returns small dicts naming MLflow objects (``run_id``,
``version``, ``candidate_version``, ...). The API server reads that return value and links to
the MLflow UI, so a person goes from a failed or promoted task to the exact run or version in
one click. The base URL is ``WINE_MLFLOW_UI_URL`` (default: ``MLFLOW_TRACKING_URI``), read when
a link is asked for, not at import.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

MODEL_NAME = "ElasticNetWineModel"
RUN_KEYS = ("run_id", "validation_run_id")
VERSION_KEYS = ("version", "candidate_version")


def ui_base() -> str:
    """Base URL of the MLflow UI as a browser sees it."""
    base = os.environ.get("WINE_MLFLOW_UI_URL") or os.environ.get("MLFLOW_TRACKING_URI", "")
    return base.rstrip("/") if base.startswith(("http://", "https://")) else ""


def run_link(value: Any, base: str) -> str:
    """Link to the MLflow run named in a task's return value, or '' if it names none."""
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
    return f"{base}/#/models/{MODEL_NAME}/versions/{quote(str(version))}"


def _return_value(ti_key: TaskInstanceKey) -> Any:
    # Runs in the API server, which holds the metadata DB session (not in task code).
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                key="return_value",
                run_id=ti_key.run_id,
                dag_ids=ti_key.dag_id,
                task_ids=ti_key.task_id,
                map_indexes=ti_key.map_index,
            ).with_only_columns(XComModel.value)
        ).first()
    return XComModel.deserialize_value(row) if row else None


class MlflowRunLink(BaseOperatorLink):
    """Opens the MLflow run the task created or used."""

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if ti_key.dag_id != "wine_retraining":
            return ""
        return run_link(_return_value(ti_key), ui_base())


class MlflowModelVersionLink(BaseOperatorLink):
    """Opens the registered model version the task trained, compared or promoted."""

    name = "MLflow model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if ti_key.dag_id != "wine_retraining":
            return ""
        return version_link(_return_value(ti_key), ui_base())


class WineMlflowLinksPlugin(AirflowPlugin):
    """Registers the MLflow links for every task."""

    name = "wine_mlflow_links"
    global_operator_extra_links = [MlflowRunLink(), MlflowModelVersionLink()]  # noqa: RUF012
