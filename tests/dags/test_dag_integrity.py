"""DAG integrity: it parses, has the expected shape and settings, and does nothing at parse time."""

from __future__ import annotations

import ast
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "wine_retraining.py"
MAIN_FLOW = [
    "ingest", "validate", "train", "evaluate", "should_promote", "promote", "deploy", "canary",
]  # fmt: skip


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["wine_retraining"]


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"wine_retraining"}


def test_main_flow_is_a_chain(dag):
    for upstream, downstream in itertools.pairwise(MAIN_FLOW):
        assert downstream in dag.get_task(upstream).downstream_task_ids, (upstream, downstream)


def test_failure_handling_tasks(dag):
    rollback = dag.get_task("rollback")
    assert rollback.upstream_task_ids == {"deploy", "canary"}
    assert rollback.trigger_rule == "one_failed"
    # Not the short-circuit gate: it would skip them along with `promote`.
    every_task = {t.task_id for t in dag.tasks} - {"report", "watcher", "should_promote"}
    assert dag.get_task("report").upstream_task_ids == every_task
    assert dag.get_task("report").trigger_rule == "all_done"
    assert dag.get_task("watcher").upstream_task_ids == every_task
    assert dag.get_task("watcher").trigger_rule == "one_failed"


def test_schedule_and_run_settings(dag):
    assert dag.schedule == "0 2 * * *"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert {"mlops", "mlflow"} <= set(dag.tags)
    assert dag.doc_md
    assert "wine_retraining" in dag.doc_md


@pytest.mark.parametrize(
    "task_id", ["ingest", "validate", "train", "evaluate", "promote", "deploy", "canary"]
)
def test_work_tasks_retry_with_backoff(dag, task_id):
    task = dag.get_task(task_id)
    assert task.retries >= 2
    assert task.retry_exponential_backoff


def test_params_are_typed_and_titled(dag):
    params = dag.params
    expected = {
        "data_uri", "min_improvement", "max_rmse", "min_r2", "alphas", "l1_ratios", "min_rows",
        "canary_rows", "canary_p95_ms", "force_promotion",
    }  # fmt: skip
    assert expected <= set(params.keys())
    for name in expected:
        schema = params.get_param(name).schema
        assert "type" in schema, name
        assert "title" in schema, name
    assert params["force_promotion"] is False


def test_params_reject_bad_values(dag):
    from airflow.sdk.definitions.param import ParamValidationError

    param = dag.params.get_param("min_improvement")
    with pytest.raises(ParamValidationError):
        param.resolve(0)
    with pytest.raises(ParamValidationError):
        dag.params.get_param("alphas").resolve([])


PARSE_PROBE = r"""
import json, runpy, socket, sys
def refuse(*args, **kwargs):
    raise AssertionError("network access at DAG parse time")
socket.socket.connect = refuse
socket.create_connection = refuse
from airflow.sdk import BaseHook, Variable
BaseHook.get_connection = classmethod(refuse)
Variable.get = staticmethod(refuse)
runpy.run_path(sys.argv[1])
heavy = ["mlflow", "sklearn", "pandas", "great_expectations", "boto3", "requests", "numpy"]
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def test_parsing_opens_no_connection_and_imports_nothing_heavy():
    out = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, str(DAG_FILE)],
        capture_output=True, text=True, timeout=120, check=True,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO / "include")},
    )  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    sorted((REPO / "include" / "wine_quality").rglob("*.py")),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_package_has_no_airflow_imports(path):
    assert not {m for m in _imported_modules(path) if m.split(".")[0] == "airflow"}


def test_dag_file_imports_only_airflow_and_stdlib_at_top():
    tree = ast.parse(DAG_FILE.read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    assert top <= {"__future__", "airflow", "functools", "collections", "datetime", "typing"}
