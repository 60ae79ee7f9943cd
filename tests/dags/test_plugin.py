"""The MLflow links: loaded by Airflow, never global, and the right URLs from task outputs."""

from __future__ import annotations

import pytest

from plugins.mlflow_links import run_link, ui_base, version_link

BASE = "http://127.0.0.1:5000"


def test_plugin_is_loaded_by_airflow_and_adds_no_global_links():
    from airflow import plugins_manager

    assert "wine_mlflow_links" in {info["name"] for info in plugins_manager.get_plugin_info()}
    assert plugins_manager.get_import_errors() == {}
    # Global links would put an empty "Extra Links" heading on every task of every DAG.
    assert plugins_manager.get_global_operator_extra_links() == []


def test_names_come_from_the_config_module():
    from plugins import mlflow_links
    from wine_quality.core import config

    assert mlflow_links.MODEL_NAME is config.MODEL_NAME
    assert mlflow_links.DAG_ID is config.DAG_ID


@pytest.mark.parametrize(
    ("value", "run", "version"),
    [
        ({"run_id": "abc123", "version": "4"}, f"{BASE}/#/runs/abc123",
         f"{BASE}/#/models/ElasticNetWineModel/versions/4"),
        ({"candidate_version": "7", "production_version": "6"}, "",
         f"{BASE}/#/models/ElasticNetWineModel/versions/7"),
        ({"validation_run_id": "r1", "rows": 1599}, f"{BASE}/#/runs/r1", ""),
        ({"rolled_back": True, "production": "3"}, "",
         f"{BASE}/#/models/ElasticNetWineModel/versions/3"),
        ({"airflow_run_id": "manual__2026-01-01", "candidate_version": "5"}, "",
         f"{BASE}/#/models/ElasticNetWineModel/versions/5"),
        ({"version": None}, "", ""),
        (None, "", ""),
        ("not a dict", "", ""),
    ],
    ids=["train", "evaluate", "validate", "rollback", "summary", "no-version", "no-xcom", "string"],
)  # fmt: skip
def test_links_from_task_outputs(value, run, version):
    assert run_link(value, BASE) == run
    assert version_link(value, BASE) == version


def test_base_url_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000/")
    monkeypatch.delenv("WINE_MLFLOW_UI_URL", raising=False)
    assert ui_base() == "http://mlflow:5000"
    monkeypatch.setenv("WINE_MLFLOW_UI_URL", "https://mlflow.example.org")
    assert ui_base() == "https://mlflow.example.org"
    monkeypatch.setenv("WINE_MLFLOW_UI_URL", "")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert ui_base() == ""
