"""The promotion rule as a table: every branch, including the traps of MLflow's validator."""

from __future__ import annotations

import numpy as np
import pytest

from wine_quality.evaluation import PromotionPolicy, decide

POLICY = PromotionPolicy(max_rmse=0.8, min_r2=0.25, min_improvement=0.01)


def m(rmse: float, r2: float) -> dict[str, float]:
    return {"rmse": rmse, "r2": r2, "mae": rmse * 0.8}


@pytest.mark.parametrize(
    ("candidate", "production", "policy", "promote", "forced"),
    [
        # first model: absolute thresholds alone decide
        (m(0.65, 0.35), None, POLICY, True, False),
        (m(0.85, 0.35), None, POLICY, False, False),  # RMSE above the maximum
        (m(0.65, 0.20), None, POLICY, False, False),  # R² below the minimum
        # against production: must beat its RMSE by the margin, and still meet the thresholds
        (m(0.60, 0.40), m(0.65, 0.35), POLICY, True, False),
        (m(0.645, 0.36), m(0.65, 0.35), POLICY, False, False),  # better, but under the margin
        (m(0.65, 0.35), m(0.65, 0.35), POLICY, False, False),  # identical retrain
        (m(0.70, 0.30), m(0.65, 0.35), POLICY, False, False),  # worse
        (m(0.79, 0.24), m(0.95, 0.10), POLICY, False, False),  # beats a bad prod, fails R²
        # forced: promoted whatever the rule says, and reported as forced
        (m(0.90, 0.10), m(0.65, 0.35), PromotionPolicy(0.8, 0.25, 0.01, force=True), True, True),
    ],
    ids=[
        "first-ok", "first-rmse-too-high", "first-r2-too-low", "beats-prod", "under-margin",
        "identical", "worse", "beats-bad-prod-but-fails-r2", "forced",
    ],
)  # fmt: skip
def test_decision_table(candidate, production, policy, promote, forced):
    got_promote, reasons, got_forced = decide(candidate, production, policy)
    assert (got_promote, got_forced) == (promote, forced)
    assert reasons
    if not promote:
        assert any(reason.startswith("FAIL") for reason in reasons)


def test_reasons_name_the_failing_check():
    _, reasons, _ = decide(m(0.645, 0.36), m(0.65, 0.35), POLICY)
    assert "FAIL: RMSE 0.6450 beats production 0.6500 by >= 0.01" in reasons
    assert "pass: RMSE 0.6450 <= max 0.8" in reasons


def test_numpy_and_int_inputs_are_accepted():
    # MLflow's MetricThreshold refuses numpy scalars and ints; decide() must cast them.
    policy = PromotionPolicy(max_rmse=np.float64(0.8), min_r2=0, min_improvement=np.float32(0.01))
    promote, _, _ = decide(
        {"rmse": np.float64(0.6), "r2": np.float64(0.3)},
        {"rmse": np.float64(0.7), "r2": np.float64(0.2)},
        policy,
    )
    assert promote
