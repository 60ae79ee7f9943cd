"""Load across a promotion: the endpoint stays busy while a new version is promoted and loaded.

Concurrency 8 for WINE_LOAD_SECONDS (default 60) on loopback; half way through, version 2 is
promoted and deployed. No request may fail, and every response must be wholly one version: the
prediction must be that version's prediction for the payload named by its X-Model-Version. The
stack's server runs two workers, so once the deployment returns no worker may answer with the
old version.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from bench.load import run_load
from tests.reliability import record
from wine_quality.core.config import EXPERIMENT_NAME, RUNBOOK_PAYLOAD, Settings, model_uri
from wine_quality.core.tracking import using
from wine_quality.data.ingest import ingest
from wine_quality.model.train import train_from_snapshot
from wine_quality.release.deploy import deploy
from wine_quality.release.registry import promote

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SECONDS = float(os.environ.get("WINE_LOAD_SECONDS", "60"))


@pytest.fixture(scope="module")
def settings(stack):
    return Settings.from_env(
        {
            "MLFLOW_TRACKING_URI": stack.tracking_uri,
            "WINE_MODEL_SERVER_URL": stack.server_url,
            "WINE_MODEL_SERVER_TOKEN": stack.script("stack.sh", "token").stdout.strip(),
            "WINE_STAGING_URI": str(stack.state / "staging"),
        }
    )


def offline_prediction(tracking_uri: str, version: str) -> float:
    import mlflow
    import pandas as pd

    with using(tracking_uri):
        model = mlflow.pyfunc.load_model(model_uri(version))
    split = RUNBOOK_PAYLOAD["dataframe_split"]
    return float(model.predict(pd.DataFrame(split["data"], columns=split["columns"]))[0])


def test_no_request_fails_and_none_is_mixed_across_a_promotion(stack, settings, wine_csv):
    ingested = ingest(str(wine_csv), settings.staging_uri, "load")
    versions = [
        train_from_snapshot(
            ingested, tracking_uri=settings.tracking_uri, experiment_name=EXPERIMENT_NAME,
            alphas=[alpha], l1_ratios=[0.5], dag_id="wine_retraining",
            airflow_run_id=f"load-{alpha}",
        ).version
        for alpha in (0.01, 0.5)  # different models, so their predictions tell them apart
    ]  # fmt: skip
    old, new = versions

    def release(version: str, expected: str | None, airflow_run_id: str) -> None:
        promote(
            tracking_uri=settings.tracking_uri, version=version, expected_production=expected,
            airflow_run_id=airflow_run_id,
        )  # fmt: skip
        deploy(
            server_url=settings.model_server_url, token=settings.model_server_token,
            expected_version=version,
        )  # fmt: skip

    release(old, None, "load-old")
    expected = {v: offline_prediction(stack.tracking_uri, v) for v in versions}
    assert abs(expected[old] - expected[new]) > 1e-3

    switched_at: list[float] = []

    def promote_half_way() -> None:
        time.sleep(SECONDS / 2)
        release(new, old, "load-new")
        switched_at.append(time.monotonic())

    promoter = threading.Thread(target=promote_half_way)
    promoter.start()
    result = run_load(
        f"{stack.server_url}/invocations", RUNBOOK_PAYLOAD,
        seconds=SECONDS, concurrency=8, max_requests=500_000,
    )  # fmt: skip
    promoter.join(timeout=120)
    summary = result.summary()
    print("load across promotion:", summary)

    assert switched_at, "the promotion did not complete during the load"
    assert summary["failed"] == 0, result.failed[:5]
    assert summary["requests"] > 100
    assert set(summary["versions"]) == {old, new}
    for sample in result.samples:
        assert abs(sample.prediction - expected[sample.version]) <= 1e-9, sample
    # Once the new version answered, no request that started later got the old one.
    first_new = min(s.started for s in result.samples if s.version == new)
    assert all(s.version == new for s in result.samples if s.started > first_new + 1.0)
    # Every worker switched before the deployment returned.
    assert {s.version for s in result.samples if s.started > switched_at[0]} == {new}
    workers = stack.served()["workers"]
    assert len(workers) == 2
    assert {w["version"] for w in workers} == {new}
    record(
        "load", "load-across-promotion",
        f"{SECONDS:g} s at concurrency 8 while version {new} is promoted and loaded",
        f"{summary['requests']} requests, {summary['failed']} failed;"
        f" p95 {summary['latency_ms']['p95']} ms",
        "every prediction equals the offline prediction of the version its header names",
        requests=summary["requests"], failed=summary["failed"], versions=summary["versions"],
    )  # fmt: skip
