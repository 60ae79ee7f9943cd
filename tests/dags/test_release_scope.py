"""The release gate: a False skips the rest of the release at once, and nothing outside it.

Driven as the task runner drives it (``execute`` with a context) against a fake task instance,
so no Airflow services are needed; the whole-DAG run is in tests/integration.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup
from airflow.sdk.exceptions import DownstreamTasksSkipped

from plugins.release_scope import ReleaseGate, same_group


class FakeTaskInstance(SimpleNamespace):
    map_index = -1

    def xcom_push(self, key, value):
        self.pushed = {**getattr(self, "pushed", {}), key: value}


def release(answer: bool) -> tuple[ReleaseGate, dict[str, EmptyOperator]]:
    """gate >> approve >> promote >> [canary, rollback] in a group, then a summary outside."""
    with DAG("release_test", schedule=None):
        with TaskGroup("release", prefix_group_id=False):
            gate = ReleaseGate(task_id="should_promote", python_callable=lambda: answer)
            tasks = {t: EmptyOperator(task_id=t) for t in ("approve", "promote", "rollback")}
            gate >> tasks["approve"] >> tasks["promote"] >> tasks["rollback"]
        tasks["report"] = EmptyOperator(task_id="report", trigger_rule="all_done")
        tasks["rollback"] >> tasks["report"]
    return gate, tasks


def run(gate: ReleaseGate):
    ti = FakeTaskInstance()
    context = {"ti": ti, "task_instance": ti, "task": gate, "dag_run": SimpleNamespace(),
               "params": {}}  # fmt: skip
    return gate.execute(context)


def test_false_skips_the_rest_of_the_release_at_once_but_not_the_summary():
    gate, _ = release(False)
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        run(gate)
    assert sorted(skipped.value.tasks) == ["approve", "promote", "rollback"]


def test_true_skips_nothing():
    gate, _ = release(True)
    assert run(gate) is True


def test_a_task_outside_any_group_keeps_nothing_in_scope():
    with DAG("no_group", schedule=None):
        lone = EmptyOperator(task_id="lone")
        other = EmptyOperator(task_id="other")
    assert same_group(lone, [other]) == []
