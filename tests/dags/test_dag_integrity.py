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
    "ingest", "validate", "train", "evaluate", "should_promote", "approve", "promote", "deploy",
    "canary",
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


GROUPS = {
    "data": {"ingest", "validate"},
    "model": {"train", "evaluate"},
    "release": {"should_promote", "approve", "promote", "deploy", "canary", "rollback"},
}
FINAL = {"report", "watcher"}


def test_tasks_are_grouped_without_renaming_them(dag):
    grouped = {}
    for task in dag.tasks:
        group = task.task_group.group_id if task.task_group else None
        grouped.setdefault(group, set()).add(task.task_id)
    assert {group: grouped.get(group) for group in GROUPS} == GROUPS
    assert grouped[None] == FINAL  # the root group


def test_every_task_has_a_display_name(dag):
    for task in dag.tasks:
        assert task.task_display_name, task.task_id
        assert task.task_display_name != task.task_id, task.task_id


def _ancestors(dag, task_id):
    return dag.get_task(task_id).get_flat_relative_ids(upstream=True)


def test_summary_always_runs_and_runs_last(dag):
    report = dag.get_task("report")
    assert report.trigger_rule == "all_done"
    assert report.upstream_task_ids == {"rollback"}
    # Every other task is an ancestor, so it is done before the summary starts: `rollback`
    # (ALL_DONE on both, deciding for itself) is done only once `deploy` and `canary` are done.
    assert _ancestors(dag, "report") == {t.task_id for t in dag.tasks} - FINAL
    rollback = dag.get_task("rollback")
    assert rollback.upstream_task_ids == {"deploy", "canary"}
    assert rollback.trigger_rule == "all_done"


def test_a_failure_anywhere_fails_the_run(dag):
    """Each task's failure reaches the watcher: directly, or as upstream_failed along a path
    of ALL_SUCCESS tasks (each of which turns an upstream failure into its own)."""
    watcher = dag.get_task("watcher")
    assert watcher.trigger_rule == "one_failed"
    assert watcher.retries == 0
    assert not watcher.downstream_task_ids

    def reaches_watcher(task_id, seen=()):
        task = dag.get_task(task_id)
        if "watcher" in task.downstream_task_ids:
            return True
        return any(
            dag.get_task(d).trigger_rule == "all_success" and reaches_watcher(d, (*seen, d))
            for d in task.downstream_task_ids
            if d not in seen
        )

    for task in dag.tasks:
        if task.task_id not in FINAL:
            assert reaches_watcher(task.task_id), task.task_id
    # The summary fails the run by itself: it is a leaf, and a failed leaf fails the run.
    assert {t.task_id for t in dag.tasks if not t.downstream_task_ids} == FINAL


RELEASE_AFTER_GATE = {"approve", "promote", "deploy", "canary", "rollback"}


def _skipped_by(dag, task_id):
    """What a False gate or a rejection by ``task_id`` skips: its downstream, kept to its group."""
    from release_scope import same_group

    task = dag.get_task(task_id)
    downstream = [dag.get_task(t) for t in task.get_flat_relative_ids(upstream=False)]
    return {t.task_id for t in same_group(task, downstream)}


def test_not_better_ends_green_with_the_release_skipped(dag):
    gate = dag.get_task("should_promote")
    assert gate.task_type == "ReleaseGate"
    assert gate.ignore_downstream_trigger_rules is True
    # The gate skips the whole rest of the release at once (no pass per task), and nothing
    # outside it: the summary (ALL_DONE after `rollback`) runs, the watcher (ONE_FAILED) skips.
    assert gate.downstream_task_ids == {"approve"}
    assert _skipped_by(dag, "should_promote") == RELEASE_AFTER_GATE
    for task_id in ("approve", "promote", "deploy", "canary"):
        assert dag.get_task(task_id).trigger_rule == "all_success"
        assert "should_promote" in _ancestors(dag, task_id)
    assert dag.get_task("deploy").upstream_task_ids == {"promote"}
    assert dag.get_task("canary").upstream_task_ids == {"promote", "train", "deploy"}


def test_a_rejection_ends_green_with_the_release_skipped(dag):
    approve = dag.get_task("approve")
    # A rejection (or no answer in time) skips promote, deploy, canary and rollback at once;
    # neither the summary nor the watcher is in the release group.
    assert approve.task_type == "PromotionApproval"
    assert approve.downstream_task_ids == {"promote"}
    assert approve.upstream_task_ids == {"should_promote", "evaluate"}
    assert dag.get_task("promote").upstream_task_ids == {"approve", "evaluate"}
    assert approve.options == ["Approve", "Reject"]
    # What the scheduler answers for a person who does not: silence is a rejection.
    assert approve.defaults == ["Reject"]
    assert approve.fail_on_reject is False
    assert approve.ignore_downstream_trigger_rules is True
    assert _skipped_by(dag, "approve") == RELEASE_AFTER_GATE - {"approve"}


def test_schedule_is_the_nightly_cron_or_new_data(dag):
    from airflow.sdk import DAG, Asset, AssetOrTimeSchedule
    from airflow.serialization.encoders import encode_timetable

    from wine_quality.core import config
    from wine_quality.data.source import data_asset_uri

    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    # The time half is exactly what the former `schedule="0 2 * * *"` made: a cron trigger at
    # 02:00 UTC (the logical date is the trigger time; no data interval).
    former = DAG("former", schedule="0 2 * * *").timetable
    assert encode_timetable(dag.timetable.timetable) == encode_timetable(former)
    assert dag.timetable.asset_condition == Asset(
        name=config.DATA_ASSET_NAME, uri=data_asset_uri(__import__("os").environ)
    )


def test_schedule_and_run_settings(dag):
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


def test_params_are_typed_titled_and_described(dag):
    params = dag.params
    expected = {
        "data_uri", "min_improvement", "ci_level", "bootstrap_resamples", "drift_psi", "drift_ks",
        "max_rmse", "min_r2", "alphas", "l1_ratios", "min_rows", "canary_rows", "canary_p95_ms",
        "force_promotion", "approval", "approval_timeout_minutes",
    }  # fmt: skip
    assert set(params.keys()) == expected
    for name in expected:
        param = params.get_param(name)
        assert "type" in param.schema, name
        assert "title" in param.schema, name
        assert param.description, name
    assert params["force_promotion"] is False


def test_param_defaults_come_from_the_config_module(dag):
    from wine_quality.core import config

    assert dict(dag.params) == {
        "data_uri": None,
        "min_improvement": config.DEFAULT_MIN_IMPROVEMENT,
        "ci_level": config.DEFAULT_CI_LEVEL,
        "bootstrap_resamples": config.DEFAULT_BOOTSTRAP_RESAMPLES,
        "drift_psi": config.DEFAULT_DRIFT_PSI,
        "drift_ks": config.DEFAULT_DRIFT_KS,
        "max_rmse": config.DEFAULT_MAX_RMSE,
        "min_r2": config.DEFAULT_MIN_R2,
        "alphas": list(config.DEFAULT_ALPHAS),
        "l1_ratios": list(config.DEFAULT_L1_RATIOS),
        "min_rows": config.MIN_ROWS,
        "canary_rows": config.DEFAULT_CANARY_ROWS,
        "canary_p95_ms": config.DEFAULT_CANARY_P95_MS,
        "force_promotion": False,
        "approval": config.DEFAULT_APPROVAL,
        "approval_timeout_minutes": config.DEFAULT_APPROVAL_TIMEOUT_MINUTES,
    }
    assert dag.params.get_param("approval").schema["enum"] == list(config.APPROVAL_MODES)
    assert dag.dag_id == config.DAG_ID


EXPECTED_LINKS = {
    "ingest": set(),
    "validate": {"MLflow run"},
    "train": {"MLflow run", "MLflow model version"},
    "evaluate": {"MLflow model version"},
    "should_promote": set(),
    "approve": set(),
    "promote": {"MLflow model version"},
    "deploy": {"MLflow run", "MLflow model version"},
    "canary": {"MLflow model version"},
    "rollback": {"MLflow model version"},
    "report": {"MLflow model version"},
    "watcher": set(),
}


def test_extra_links_only_on_tasks_with_something_to_link(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    assert {t.task_id: {link.name for link in t.operator_extra_links} for t in dag.tasks} == (
        EXPECTED_LINKS
    )
    # What the API server sees: the serialized DAG, with no global links from the plugin.
    served = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert {t.task_id: set(t.extra_links) for t in served.tasks} == EXPECTED_LINKS


def test_params_reject_bad_values(dag):
    from airflow.sdk.definitions.param import ParamValidationError

    param = dag.params.get_param("min_improvement")
    with pytest.raises(ParamValidationError):
        param.resolve(0)
    with pytest.raises(ParamValidationError):
        dag.params.get_param("alphas").resolve([])
    with pytest.raises(ParamValidationError):
        dag.params.get_param("approval").resolve("sometimes")
    with pytest.raises(ParamValidationError):
        dag.params.get_param("approval_timeout_minutes").resolve(0)


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


@pytest.mark.parametrize(
    ("data_uri", "from_airflow"),
    [
        ("../shared/data/winequality-red.csv", set()),
        # An s3:// or https:// asset URI makes Airflow load every provider's asset URI
        # normalizers (the Amazon provider's imports boto3 and requests), once per process.
        ("s3://wine-data/incoming/winequality-red.csv", {"boto3", "requests"}),
        ("", {"boto3", "requests"}),
    ],
    ids=["local-path", "s3", "default-https"],
)
def test_parsing_opens_no_connection_and_imports_nothing_heavy(data_uri, from_airflow):
    env = {
        k: v for k, v in __import__("os").environ.items() if not k.startswith("WINE_DATA_")
    }  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, str(DAG_FILE)],
        capture_output=True, text=True, timeout=120, check=True,
        env={**env, "WINE_DATA_URI": data_uri, "PYTHONPATH": str(REPO / "include")},
    )  # fmt: skip
    assert set(json.loads(out.stdout.strip().splitlines()[-1])) <= from_airflow


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
    allowed = {"__future__", "airflow", "functools", "os", "collections", "datetime", "typing"}
    # The config and data_source modules (stdlib only) and the plugins (Airflow + config): the
    # parse probe above proves none pulls in anything heavy.
    assert top <= allowed | {"wine_quality", "mlflow_links", "promotion_approval", "release_scope"}
