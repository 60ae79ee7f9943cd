"""``python -m bench dag``: the DAG run against the same steps in one plain process.

On the shipped file, with promotion forced so that every stage runs, the bench alternates, for
several repetitions:

- **plain**: a fresh interpreter running ingest, validate, train, evaluate, promote, deploy and
  canary with the package's functions (:func:`bench.cycle.run_cycle`); its wall time from spawn
  to exit, and each stage's time.
- **dag**: ``airflow dags test wine_retraining --conf '{"force_promotion": true}'`` in the
  pipeline's environment (``scripts/airflow-env.sh``, as ``make run``); its wall time, the
  run's duration as Airflow records it, and each task's start-to-end from the metadata DB.
- **floor**: ``airflow dags test`` of a DAG of no-op tasks, as many as ``wine_retraining`` has,
  in a chain: what Airflow itself costs per run on this machine, whatever the tasks do.

Results: bench/results/dag.json (every repetition) and the ``dag`` section of bench/results.md
(medians, min-max, the ratio DAG/plain and the same ratio without Airflow's floor). Needs the
local stack (``make up``); a production version is made first if there is none.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.cycle import REPO, SHARED_DATA, STAGES, _cycle_in_child, stack_from_env
from bench.report import RESULTS_MD, put_section

RESULTS = Path(__file__).parent / "results"
DAG_ID = "wine_retraining"
FLOOR_DAG_ID = "bench_airflow_floor"
# The budgets: the DAG at most 1.3x the plain sequence, the plain sequence <= 9 s.
RATIO_BUDGET = 1.3
PLAIN_BUDGET_SECONDS = 9.0
FLOOR_DAG = '''"""No-op tasks in a chain, as many as wine_retraining has: Airflow's own cost."""
from datetime import datetime

from airflow.sdk import chain, dag, task


@dag(dag_id="{dag_id}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def floor():
    chain(*[task(task_id=f"t{{i:02d}}")(lambda: None)() for i in range({tasks})])


floor()
'''


def pipeline_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment ``make run`` gives ``airflow dags test`` (dotenv + airflow-env.sh)."""
    script = ". scripts/dotenv.sh >/dev/null; . scripts/airflow-env.sh >/dev/null; env -0"
    done = subprocess.run(
        ["bash", "-c", script], cwd=REPO, env={**env, "ROOT": str(REPO)},
        capture_output=True, check=True,
    )  # fmt: skip
    pairs = (item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    return dict(pairs)


def airflow(env: Mapping[str, str], *args: str, log: Path, timeout: float = 900) -> float:
    """Run ``airflow ARGS`` with its output appended to ``log``; its wall time in seconds.

    Raises:
        RuntimeError: It exited non-zero.
    """
    binary = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    with log.open("a") as handle:
        handle.write(f"\n=== airflow {' '.join(args)}\n")
        handle.flush()
        start = time.monotonic()
        done = subprocess.run(
            [binary, *args], cwd=REPO, env=dict(env), stdout=handle, stderr=subprocess.STDOUT,
            timeout=timeout, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - start
    if done.returncode:
        raise RuntimeError(f"airflow {args[0]} {args[1]} exited {done.returncode}: see {log}")
    return seconds


def last_run(log: Path, dag_id: str) -> tuple[str, float | None]:
    """The run id and duration of the last run of ``dag_id`` that ``log`` reports finished."""
    run_id, duration = "", None
    for line in log.read_text(errors="replace").splitlines():
        if "DagRun Finished" in line and f"dag_id={dag_id}," in line:
            fields = dict(
                part.strip().split("=", 1) for part in line.split(", ") if "=" in part.strip()
            )
            run_id = fields.get("run_id", "").strip()
            duration = float(fields["run_duration"]) if "run_duration" in fields else None
    if not run_id:
        raise RuntimeError(f"no finished run of {dag_id} in {log}")
    return run_id, duration


def task_seconds(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Each task's start-to-end (``airflow tasks states-for-dag-run -o json`` rows)."""
    out: dict[str, float | None] = {}
    for row in rows:
        start, end = row.get("start_date"), row.get("end_date")
        if start and end and start != "None" and end != "None":
            seconds = datetime.fromisoformat(end) - datetime.fromisoformat(start)
            out[row["task_id"]] = round(seconds.total_seconds(), 3)
        else:
            out[row["task_id"]] = None  # skipped without running
    return out


def dag_once(env: Mapping[str, str], dag_id: str, conf: dict[str, Any], log: Path) -> dict:
    """One ``airflow dags test``: wall time, Airflow's run duration and each task's time."""
    wall = airflow(env, "dags", "test", dag_id, "--conf", json.dumps(conf), log=log)
    run_id, duration = last_run(log, dag_id)
    with tempfile.NamedTemporaryFile("w+", suffix=".json") as out:
        binary = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
        subprocess.run(
            [binary, "tasks", "states-for-dag-run", dag_id, run_id, "-o", "json"],
            cwd=REPO, env=dict(env), stdout=out, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        out.seek(0)
        rows = json.loads(out.read() or "[]")
    return {
        "wall_seconds": round(wall, 3),
        "run_duration_seconds": duration,
        "run_id": run_id,
        "tasks": task_seconds(rows),
        "states": {row["task_id"]: row["state"] for row in rows},
    }


def plain_once(csv: Path, env: Mapping[str, str], workdir: Path, log: Path, tag: str) -> dict:
    """The same steps in one fresh plain process: wall time and each stage's time."""
    start = time.monotonic()
    found = _cycle_in_child(csv, f"bench_dag__plain__{tag}", workdir, env, log)
    wall = time.monotonic() - start
    stages = {name: (found.get(name) or {}).get("seconds") for name in STAGES}
    passed = bool(found) and all((found.get(n) or {}).get("status") == "passed" for n in STAGES)
    return {"wall_seconds": round(wall, 3), "stages": stages, "passed": passed}


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    """Median and min-max of the values that are there."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None}
    return {
        "median": round(statistics.median(present), 3),
        "min": round(min(present), 3),
        "max": round(max(present), 3),
    }


def summarise(plain: list[dict], dag: list[dict], floor: list[dict]) -> dict[str, Any]:
    """Medians per figure and the ratios the issue asks for."""
    plain_sum = [sum(s or 0.0 for s in run["stages"].values()) for run in plain]
    summary: dict[str, Any] = {
        "plain_wall": spread([r["wall_seconds"] for r in plain]),
        "plain_stage_sum": spread(plain_sum),
        "plain_stages": {n: spread([r["stages"][n] for r in plain]) for n in STAGES},
        "dag_wall": spread([r["wall_seconds"] for r in dag]),
        "dag_run_duration": spread([r["run_duration_seconds"] for r in dag]),
        "dag_tasks": {
            task: spread([r["tasks"].get(task) for r in dag])
            for task in (dag[0]["tasks"] if dag else {})
        },
        "floor_wall": spread([r["wall_seconds"] for r in floor]),
        "floor_run_duration": spread([r["run_duration_seconds"] for r in floor]),
    }
    plain_wall = summary["plain_wall"]["median"]
    dag_wall = summary["dag_wall"]["median"]
    floor_wall = summary["floor_wall"]["median"]
    if plain_wall and dag_wall:
        summary["ratio_dag_over_plain"] = round(dag_wall / plain_wall, 2)
        if floor_wall is not None:
            summary["ratio_dag_minus_floor_over_plain"] = round(
                (dag_wall - floor_wall) / plain_wall, 2
            )
    summary["budgets"] = {
        "ratio": RATIO_BUDGET,
        "ratio_met": summary.get("ratio_dag_over_plain", float("inf")) <= RATIO_BUDGET,
        "plain_stage_sum_seconds": PLAIN_BUDGET_SECONDS,
        "plain_met": (summary["plain_stage_sum"]["median"] or float("inf")) <= PLAIN_BUDGET_SECONDS,
    }
    return summary


def run(repetitions: int, *, source: Path, env: Mapping[str, str], out: Path) -> dict[str, Any]:
    """Alternate plain, DAG and floor runs ``repetitions`` times; write and return the results."""
    from bench.cycle import _needs_production

    stack = stack_from_env(env, "")
    af_env = pipeline_env(env)
    af_env["WINE_DATA_URI"] = str(source)
    workdir = Path(tempfile.mkdtemp(prefix="bench-dag-"))
    log = workdir / "dag.log"
    floor_dir = workdir / "floor_dags"
    floor_dir.mkdir()
    floor_env = {**af_env, "AIRFLOW__CORE__DAGS_FOLDER": str(floor_dir)}
    try:
        airflow(af_env, "db", "migrate", log=log)
        if _needs_production(stack.tracking_uri):
            plain_once(source, env, workdir, log, "warmup")
        # One unmeasured pass of each (file caches, the first SQLite pages); the first also
        # says how many tasks the floor DAG gets.
        tasks = len(dag_once(af_env, DAG_ID, {"force_promotion": True}, log)["tasks"])
        (floor_dir / "floor.py").write_text(FLOOR_DAG.format(dag_id=FLOOR_DAG_ID, tasks=tasks))
        dag_once(floor_env, FLOOR_DAG_ID, {}, log)
        plain, dag, floor = [], [], []
        for i in range(repetitions):
            load = os.getloadavg()[0]
            plain.append(plain_once(source, env, workdir, log, f"{i}-{int(time.time())}"))
            dag.append(dag_once(af_env, DAG_ID, {"force_promotion": True}, log))
            floor.append(dag_once(floor_env, FLOOR_DAG_ID, {}, log))
            for run_ in (plain[-1], dag[-1], floor[-1]):
                run_["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
            print(
                f"rep {i + 1}: plain {plain[-1]['wall_seconds']:.1f} s"
                f" (stages {sum(s or 0 for s in plain[-1]['stages'].values()):.1f} s),"
                f" dag {dag[-1]['wall_seconds']:.1f} s, floor {floor[-1]['wall_seconds']:.1f} s",
                flush=True,
            )
    finally:
        with contextlib.suppress(RuntimeError):  # It may never have been written.
            airflow(floor_env, "dags", "delete", FLOOR_DAG_ID, "--yes", log=log)
    document = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "data": str(source),
        "repetitions": repetitions,
        "floor_tasks": tasks,
        "runs": {"plain": plain, "dag": dag, "floor": floor},
        "summary": summarise(plain, dag, floor),
        "log": str(log),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    return document


def write_markdown(document: dict[str, Any], path: Path) -> None:
    """The DAG-vs-plain table into its section of ``path`` (bench/results.md)."""
    s = document["summary"]

    def cell(figure: dict[str, float | None]) -> str:
        if figure["median"] is None:
            return "-"
        return f"{figure['median']:.2f} ({figure['min']:.2f}-{figure['max']:.2f})"

    loads = [r["load_average"] for runs in document["runs"].values() for r in runs]
    low = min((a for a, _ in loads), default=0)
    high = max((b for _, b in loads), default=0)
    lines = [
        "## Cycle: the DAG vs the same steps in one plain process (`python -m bench dag`)",
        "",
        f"Measured {document['measured_at']} on {document['machine']['cpus']} CPUs, load average"
        f" {low:g}-{high:g}, on the shipped file with promotion forced (every stage runs),"
        f" {document['repetitions']} repetitions alternating plain, DAG and floor. Seconds,"
        " median (min-max). *plain*: a fresh interpreter calling the package's functions in"
        " order, spawn to exit. *DAG*: `airflow dags test wine_retraining` as `make run` runs it,"
        " start to exit; its tasks' times are Airflow's start-to-end per task. *floor*: `airflow"
        f" dags test` of {document['floor_tasks']} no-op tasks in a chain: Airflow's own cost per"
        " run, whatever the tasks do.",
        "",
        "| stage | plain | DAG task |",
        "| --- | ---: | ---: |",
    ]
    for name in STAGES:
        lines.append(
            f"| {name} | {cell(s['plain_stages'][name])} |"
            f" {cell(s['dag_tasks'].get(name, spread([])))} |"
        )
    for name, figure in s["dag_tasks"].items():
        if name not in STAGES:
            lines.append(f"| {name} (DAG only) | | {cell(figure)} |")
    lines += [
        f"| **stages, summed** | **{cell(s['plain_stage_sum'])}** | |",
        f"| **wall, start to exit** | **{cell(s['plain_wall'])}** | **{cell(s['dag_wall'])}** |",
        f"| Airflow's run duration | | {cell(s['dag_run_duration'])} |",
        f"| floor: no-op DAG, wall | | {cell(s['floor_wall'])} |",
        "",
    ]
    ratio = s.get("ratio_dag_over_plain")
    b = s["budgets"]
    lines.append(
        f"DAG / plain (wall, medians): **{ratio}x** (budget {b['ratio']}x:"
        f" {'met' if b['ratio_met'] else 'not met'}); without Airflow's floor:"
        f" {s.get('ratio_dag_minus_floor_over_plain')}x. Plain stages summed:"
        f" {s['plain_stage_sum']['median']} s (budget {b['plain_stage_sum_seconds']:g} s:"
        f" {'met' if b['plain_met'] else 'not met'})."
    )
    put_section(path, "dag", lines)


def main() -> int:
    """``python -m bench dag``: WINE_BENCH_DAG_REPETITIONS (default 5); the data is
    WINE_BENCH_DATA, else the shared copy of the UCI file."""
    repetitions = int(os.environ.get("WINE_BENCH_DAG_REPETITIONS", "5"))
    source = Path(os.environ.get("WINE_BENCH_DATA") or SHARED_DATA)
    out = RESULTS / "dag.json"
    document = run(repetitions, source=source, env=os.environ, out=out)
    write_markdown(document, RESULTS_MD)
    print(json.dumps(document["summary"], indent=2))
    print(f"wrote {out} and {RESULTS_MD}")
    return 0 if all(r["passed"] for r in document["runs"]["plain"]) else 1


if __name__ == "__main__":
    sys.exit(main())
