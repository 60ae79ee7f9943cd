"""Canary: check that the deployed endpoint serves the promoted model correctly and fast enough.

The endpoint must answer the runbook's exact payload and a sample of holdout rows with HTTP 200,
one finite prediction per row, the promoted version in ``X-Model-Version``, predictions equal to
the offline model's for the same rows, and a p95 latency within budget.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from wine_quality.core.config import (
    FEATURES,
    PREDICTION_TOLERANCE,
    RUNBOOK_PAYLOAD,
    SEED,
    model_uri,
)
from wine_quality.core.errors import CanaryError
from wine_quality.core.tracking import using
from wine_quality.data.holdout import load_holdout
from wine_quality.gate.stats import percentile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CanaryReport:
    """What the canary sent and saw."""

    passed: bool
    version: str
    requests: int
    rows: int
    p95_ms: float
    max_abs_diff: float
    failures: list[str] = field(default_factory=list)


def canary_payloads(sample: Any) -> list[dict[str, Any]]:
    """The runbook's payload first, then one single-row request per sample row."""
    payloads = [RUNBOOK_PAYLOAD]
    for row in sample.loc[:, list(FEATURES)].itertuples(index=False):
        payloads.append({"dataframe_split": {"columns": list(FEATURES), "data": [list(row)]}})
    return payloads


def check_endpoint(
    *,
    server_url: str,
    expected_version: str,
    payloads: list[dict[str, Any]],
    expected_predictions: list[list[float]],
    p95_budget_ms: float,
    timeout: float = 10.0,
) -> CanaryReport:
    """Send ``payloads`` and compare every answer with ``expected_predictions``.

    Pure with respect to MLflow: the caller computes the offline predictions.
    """
    import requests

    failures: list[str] = []
    latencies: list[float] = []
    max_diff = 0.0
    rows = 0
    with requests.Session() as session:
        for index, (payload, expected) in enumerate(
            zip(payloads, expected_predictions, strict=True)
        ):
            started = time.perf_counter()
            response = session.post(f"{server_url}/invocations", json=payload, timeout=timeout)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                failures.append(
                    f"request {index}: HTTP {response.status_code} {response.text[:200]}"
                )
                continue
            served = response.headers.get("X-Model-Version")
            if served != expected_version:
                failures.append(
                    f"request {index}: served version {served}, expected {expected_version}"
                )
            predictions = response.json().get("predictions")
            if not isinstance(predictions, list) or len(predictions) != len(expected):
                failures.append(
                    f"request {index}: expected {len(expected)} predictions,"
                    f" got {str(predictions)[:200]}"
                )
                continue
            for got, want in zip(predictions, expected, strict=True):
                rows += 1
                if not isinstance(got, int | float) or not math.isfinite(got):
                    failures.append(f"request {index}: non-finite prediction {got!r}")
                    continue
                diff = abs(float(got) - want)
                max_diff = max(max_diff, diff)
                if diff > PREDICTION_TOLERANCE:
                    failures.append(
                        f"request {index}: prediction {got} differs from the offline"
                        f" model's {want} by {diff:.3g}"
                    )
    p95 = percentile(latencies, 95)
    if p95 > p95_budget_ms:
        failures.append(f"p95 latency {p95:.1f} ms exceeds the budget of {p95_budget_ms:g} ms")
    return CanaryReport(
        passed=not failures,
        version=expected_version,
        requests=len(payloads),
        rows=rows,
        p95_ms=round(p95, 2),
        max_abs_diff=max_diff,
        failures=failures[:20],
    )


def run_canary(
    *,
    tracking_uri: str,
    server_url: str,
    version: str,
    holdout_uri: str,
    sample_rows: int,
    p95_budget_ms: float,
    seed: int = SEED,
) -> CanaryReport:
    """Run the canary against the deployed endpoint for the promoted ``version``.

    Raises:
        CanaryError: Any check failed; the message lists what.
    """
    import mlflow
    import pandas as pd

    holdout = load_holdout(holdout_uri, tracking_uri)
    sample = holdout.sample(n=min(sample_rows, len(holdout)), random_state=seed)
    payloads = canary_payloads(sample)
    with using(tracking_uri):
        model = mlflow.pyfunc.load_model(model_uri(version))

    expected = [
        [
            float(v)
            for v in model.predict(
                pd.DataFrame(p["dataframe_split"]["data"], columns=list(FEATURES))
            )
        ]
        for p in payloads
    ]
    report = check_endpoint(
        server_url=server_url,
        expected_version=version,
        payloads=payloads,
        expected_predictions=expected,
        p95_budget_ms=p95_budget_ms,
    )
    if not report.passed:
        raise CanaryError(
            f"canary failed for version {version} ({len(report.failures)} problems): "
            + "; ".join(report.failures[:5])
        )
    log.info("canary passed: %s", asdict(report))
    return report
