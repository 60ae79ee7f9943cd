"""The DAG-vs-plain bench's pure parts: reading Airflow's records, medians, ratios, the table."""

from __future__ import annotations

import pytest

from bench import dag
from bench.cycle import STAGES

FINISHED = (
    "2026-11-29T18:21:54.508961Z [info     ] DagRun Finished: dag_id=wine_retraining,"
    " logical_date=2026-11-29 18:21:36.899303+00:00,"
    " run_id=manual__2026-11-29T18:21:37.469178+00:00, run_start_date=2026-11-29"
    " 18:21:36.899303+00:00, run_end_date=2026-11-29 18:21:54.508089+00:00,"
    " run_duration=17.608786, state=success, run_type=manual, [airflow.models.dagrun.DagRun]"
)


def test_the_last_finished_run_of_the_dag_is_read_from_the_log(tmp_path):
    log = tmp_path / "dag.log"
    other = FINISHED.replace("dag_id=wine_retraining", "dag_id=bench_airflow_floor")
    log.write_text(f"{FINISHED.replace('17.608786', '20.0')}\n{FINISHED}\n{other}\n")
    assert dag.last_run(log, "wine_retraining") == (
        "manual__2026-11-29T18:21:37.469178+00:00",
        17.608786,
    )
    with pytest.raises(RuntimeError, match="no finished run of nothing"):
        dag.last_run(log, "nothing")


def test_task_times_come_from_start_and_end_and_a_skip_has_none():
    rows = [
        {"task_id": "ingest", "start_date": "2026-11-29T18:28:01.853869+00:00",
         "end_date": "2026-11-29T18:28:05.258711+00:00"},
        {"task_id": "watcher", "start_date": None, "end_date": None},
    ]  # fmt: skip
    assert dag.task_seconds(rows) == {"ingest": 3.405, "watcher": None}


def run(seconds: float) -> dict:
    return {"wall_seconds": seconds, "stages": dict.fromkeys(STAGES, seconds / 10)}


def airflow_run(wall: float, tasks: dict) -> dict:
    return {"wall_seconds": wall, "run_duration_seconds": wall - 3, "tasks": tasks}


def test_the_ratios_are_of_medians_and_the_budgets_are_checked():
    plain = [run(10.0), run(12.0), run(11.0)]
    dags = [airflow_run(w, {"ingest": 1.0, "report": 0.5}) for w in (20.0, 22.0, 21.0)]
    floor = [airflow_run(w, {"t00": 0.1}) for w in (8.0, 7.0, 9.0)]
    summary = dag.summarise(plain, dags, floor)
    assert summary["plain_wall"] == {"median": 11.0, "min": 10.0, "max": 12.0}
    assert summary["plain_stage_sum"]["median"] == pytest.approx(7.7)
    assert summary["ratio_dag_over_plain"] == round(21.0 / 11.0, 2)
    assert summary["ratio_dag_minus_floor_over_plain"] == round((21.0 - 8.0) / 11.0, 2)
    assert summary["budgets"]["ratio_met"] is False
    assert summary["budgets"]["plain_met"] is True
    # 18 s against 15 s is within 1.3x; seven stages of 1.5 s are over 9 s.
    close = dag.summarise([run(15.0)], [airflow_run(18.0, {})], [airflow_run(5.0, {})])
    assert close["budgets"]["ratio_met"] is True
    assert close["plain_stage_sum"]["median"] == pytest.approx(10.5)
    assert close["budgets"]["plain_met"] is False


def test_the_markdown_has_every_stage_both_walls_and_the_verdicts(tmp_path):
    plain = [run(10.0)]
    dags = [airflow_run(20.0, {**dict.fromkeys(STAGES, 1.0), "report": 0.5, "watcher": None})]
    floor = [airflow_run(8.0, {})]
    for r in (*plain, *dags, *floor):
        r["load_average"] = [0.5, 0.7]
    document = {
        "measured_at": "2026-11-29T20:00:00+0000", "machine": {"cpus": 2}, "repetitions": 1,
        "floor_tasks": 12, "runs": {"plain": plain, "dag": dags, "floor": floor},
        "summary": dag.summarise(plain, dags, floor),
    }  # fmt: skip
    path = tmp_path / "results.md"
    path.write_text("# Bench results\n\n<!-- cycle:start -->\nkept\n<!-- cycle:end -->\n")
    dag.write_markdown(document, path)
    text = path.read_text()
    assert "kept" in text
    assert text.count("<!-- dag:start -->") == 1
    for name in STAGES:
        assert f"| {name} | 1.00 (1.00-1.00) | 1.00 (1.00-1.00) |" in text
    assert "| report (DAG only) | | 0.50 (0.50-0.50) |" in text
    assert "| watcher (DAG only) | | - |" in text
    assert "**2.0x** (budget 1.3x: not met)" in text
    assert "without Airflow's floor: 1.2x" in text
    assert "load average 0.5-0.7" in text
