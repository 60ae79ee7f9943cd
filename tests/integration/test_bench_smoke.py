"""The endpoint bench, once, on a tiny plan: so that ``make bench`` cannot rot unnoticed.

It needs what the bench needs (the local stack serving a version, ``hey`` on PATH) and checks
only that every step ran on both servers and wrote its figures, not how fast they were.
"""

from __future__ import annotations

import json
import shutil

import pytest

from bench.endpoint import CONCURRENCY, ROWS, Plan, run
from wine_quality.config import Settings
from wine_quality.pipeline import deploy_production, ingest_data, promote_candidate, train_candidate

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_endpoint_bench_runs_once_on_a_tiny_plan(stack, wine_csv, tmp_path):
    assert shutil.which("hey"), "hey is missing: apt-get install hey"
    settings = Settings.from_env(
        {
            "MLFLOW_TRACKING_URI": stack.tracking_uri,
            "WINE_MODEL_SERVER_URL": stack.server_url,
            "WINE_MODEL_SERVER_TOKEN": stack.script("stack.sh", "token").stdout.strip(),
            "WINE_STAGING_URI": str(stack.state / "staging"),
        }
    )
    ingested = ingest_data(data_uri=str(wine_csv), settings=settings, snapshot_key="bench")
    candidate = train_candidate(
        ingested=ingested, settings=settings, alphas=[0.1], l1_ratios=[0.5],
        dag_id="wine_retraining", airflow_run_id="bench-smoke",
    )  # fmt: skip
    promotion = promote_candidate(
        decision={"candidate_version": candidate["version"], "production_version": None},
        settings=settings, airflow_run_id="bench-smoke",
    )  # fmt: skip
    deploy_production(promotion=promotion, settings=settings)

    out = tmp_path / "endpoint.json"
    document = run(
        stack.server_url,
        stack.tracking_uri,
        Plan(requests=16, repetitions=1, seconds_limit=60),
        out,
    )
    assert json.loads(out.read_text()) == document
    assert document["model"]["version"] == candidate["version"]
    assert set(document["steps"]) == {f"rows_{r}_c{c}" for r in ROWS for c in CONCURRENCY}
    for step in document["steps"].values():
        for server in ("project", "stock"):
            assert step[server]["failed"] == 0
            assert step[server]["rps"]["median"] > 0
        assert step["ratio_rps_project_over_stock"] > 0
