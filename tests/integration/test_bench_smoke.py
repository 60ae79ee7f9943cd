"""The benches, once, on a tiny plan: so that ``make bench`` cannot rot unnoticed.

They need what the benches need (the local stack serving a version, ``hey`` on PATH) and check
only that every step ran and wrote its figures, not how fast it was.
"""

from __future__ import annotations

import json
import shutil

import pytest

from bench import cores, cycle, dag
from bench.endpoint import CONCURRENCY, ROWS, Plan, payload, run, summarise, write_markdown

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_endpoint_bench_runs_once_on_a_tiny_plan(stack, wine_csv, tmp_path):
    assert shutil.which("hey"), "hey is missing: apt-get install hey"
    # A served version, made the way users make one: a run of the DAG (a one-point grid).
    code, summary, output = stack.run_dag(str(wine_csv), conf={"alphas": [0.1], "l1_ratios": [0.5]})
    assert code == 0, output[-3000:]
    version = summary["served_version"]
    assert version == stack.production() == stack.served()["version"]

    out = tmp_path / "endpoint.json"
    document = run(
        {"project": stack.server_url},
        stack.tracking_uri,
        Plan(requests=16, repetitions=1, seconds_limit=60),
        out,
    )
    assert json.loads(out.read_text()) == document
    assert document["model"]["version"] == version
    assert list(document["servers"]) == ["project", "stock", "sklearn"]
    # All three served the same model: the bench refuses to measure otherwise.
    assert max(document["predictions"].values()) - min(document["predictions"].values()) <= 1e-9
    assert set(document["steps"]) == {f"rows_{r}_c{c}" for r in ROWS for c in CONCURRENCY}
    for step in document["steps"].values():
        for server in document["servers"]:
            assert step[server]["failed"] == 0
            assert step[server]["rps"]["median"] > 0
            assert len(step[server]["runs"]) == 1  # each run's own figures are kept
        for baseline in ("stock", "sklearn"):
            assert step[f"ratio_rps_project_over_{baseline}"] > 0
            assert step[f"ratio_p50_{baseline}_over_project"] > 0
            assert step[server]["client_cpu_ms_per_request"] > 0
    write_markdown(document, tmp_path / "results.md")
    assert "| sklearn |" in (tmp_path / "results.md").read_text()


def test_the_scaling_measurement_runs_wrk_once_per_server_and_concurrency(
    stack, wine_csv, tmp_path
):
    """wrk against the stack's server, under two names (the bench compares worker counts; the
    smoke test only needs wrk to run, answer and be parsed)."""
    assert shutil.which("wrk"), "wrk is missing: apt-get install wrk"
    if not stack.served().get("version"):  # Run alone: serve a version the quick way.
        code, _, output = stack.run_dag(str(wine_csv), conf={"alphas": [0.1], "l1_ratios": [0.5]})
        assert code == 0, output[-3000:]
    body = tmp_path / "rows-1.json"
    body.write_bytes(payload(1))
    servers = {"project": stack.server_url, "again": stack.server_url}
    steps = cores.measure(servers, body, tmp_path, seconds=1, repetitions=1, summarise=summarise)
    assert set(steps) == {"c1", "c8"}
    for step in steps.values():
        assert set(step) == set(servers)
        for cell in step.values():
            assert cell["failed"] == 0
            assert cell["rps"]["median"] > 0
            assert 0 < cell["p50_ms"]["median"] <= cell["p99_ms"]["median"]
            assert cell["client_cpu_ms_per_request"] > 0
    workers = {"project": 2, "again": 1}
    scaling = {"seconds": 1, "repetitions": 1, "workers": workers, "steps": steps}
    document = {"machine": {"cpus": 2}, "steps": {}, "scaling": scaling}
    assert "wrk: " in "\n".join(cores.render(document))


def test_cycle_bench_runs_every_stage_on_two_tiny_sizes(stack, wine_csv, tmp_path):
    out_json, out_md = tmp_path / "cycle.json", tmp_path / "results.md"
    document = cycle.run(
        [600, 1200], source=wine_csv, env=stack.env, data_dir=tmp_path / "data",
        out_json=out_json, out_md=out_md,
    )  # fmt: skip
    assert json.loads(out_json.read_text()) == document
    assert [size["rows"] for size in document["sizes"]] == [600, 1200]
    for size in document["sizes"]:
        for name, stage in size["stages"].items():
            assert stage["status"] == "passed", (size["rows"], name, stage["detail"])
            assert stage["seconds"] > 0
            assert stage["peak_rss_mb"] > 50  # an interpreter with pandas, at the least
        assert size["peak_rss_mb"] == max(s["peak_rss_mb"] for s in size["stages"].values())
    exponents = document["growth_exponent"]
    assert set(exponents) == {*cycle.STAGES, "total"}
    assert all(isinstance(e["600->1200"], float) for e in exponents.values())
    # Every size went all the way: the server now serves what the last cycle promoted.
    assert stack.served()["version"] == stack.production()
    text = out_md.read_text()
    assert text.count(cycle.MD_START) == 1
    assert "| canary |" in text
    assert not list((tmp_path / "data").rglob("staging/raw/*/*.csv"))  # snapshots not kept


def test_dag_bench_runs_the_dag_the_plain_sequence_and_the_floor_once(stack, wine_csv, tmp_path):
    out = tmp_path / "dag.json"
    document = dag.run(1, source=wine_csv, env=stack.env, out=out)
    assert json.loads(out.read_text()) == document
    runs = document["runs"]
    assert runs["plain"][0]["passed"]
    assert all(seconds > 0 for seconds in runs["plain"][0]["stages"].values())
    ran = runs["dag"][0]
    # Forced: every release task ran, and rollback skipped itself (nothing failed).
    assert {k: ran["states"][k] for k in ("promote", "deploy", "canary", "rollback")} == {
        "promote": "success", "deploy": "success", "canary": "success", "rollback": "skipped",
    }  # fmt: skip
    assert all(ran["tasks"][name] > 0 for name in cycle.STAGES)
    assert ran["wall_seconds"] > ran["run_duration_seconds"] > 0
    assert document["floor_tasks"] == len(ran["states"])
    assert set(runs["floor"][0]["states"].values()) == {"success"}
    summary = document["summary"]
    assert summary["ratio_dag_over_plain"] > 0
    md = tmp_path / "results.md"
    dag.write_markdown(document, md)
    assert "| **wall, start to exit** |" in md.read_text()
    # The floor DAG is removed from the metadata DB afterwards.
    listed = stack.script("airflow.sh", "cli", "dags", "list", "-o", "plain")
    assert dag.FLOOR_DAG_ID not in listed.stdout


def test_load_bench_runs_each_concurrency_once(stack, wine_csv, tmp_path):
    from bench.__main__ import load

    if stack.served().get("version") is None:
        code, _, output = stack.run_dag(str(wine_csv), conf={"alphas": [0.1], "l1_ratios": [0.5]})
        assert code == 0, output[-3000:]
    out, md = tmp_path / "load.json", tmp_path / "results.md"
    assert load(stack.server_url, 1.0, out, md) == 0
    steps = json.loads(out.read_text())["steps"]
    assert set(steps) == {"concurrency_1", "concurrency_4", "concurrency_8"}
    assert all(step["requests"] > 0 and step["failed"] == 0 for step in steps.values())
    assert "| 8 |" in md.read_text()
