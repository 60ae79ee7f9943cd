"""The endpoint bench, once, on a tiny plan: so that ``make bench`` cannot rot unnoticed.

It needs what the bench needs (the local stack serving a version, ``hey`` on PATH) and checks
only that every step ran on both servers and wrote its figures, not how fast they were.
"""

from __future__ import annotations

import json
import shutil

import pytest

from bench.endpoint import CONCURRENCY, ROWS, Plan, run

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
        stack.server_url,
        stack.tracking_uri,
        Plan(requests=16, repetitions=1, seconds_limit=60),
        out,
    )
    assert json.loads(out.read_text()) == document
    assert document["model"]["version"] == version
    assert set(document["steps"]) == {f"rows_{r}_c{c}" for r in ROWS for c in CONCURRENCY}
    for step in document["steps"].values():
        for server in ("project", "stock"):
            assert step[server]["failed"] == 0
            assert step[server]["rps"]["median"] > 0
        assert step["ratio_rps_project_over_stock"] > 0
