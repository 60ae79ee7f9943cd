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
        assert any(" not " in r or " above " in r or " below the" in r for r in reasons)


@pytest.mark.parametrize(
    ("candidate", "production", "policy", "expected"),
    [
        (m(0.6505, 0.32), m(0.6505, 0.32), PromotionPolicy(0.8, 0.25, 0.005), [
            "RMSE 0.6505 is at most the maximum of 0.8",
            "R² 0.3200 is at least the minimum of 0.25",
            "RMSE 0.6505 is not at least 0.005 below production's 0.6505",
        ]),
        (m(0.60, 0.40), m(0.65, 0.35), POLICY, [
            "RMSE 0.6000 is at most the maximum of 0.8",
            "R² 0.4000 is at least the minimum of 0.25",
            "RMSE 0.6000 is at least 0.01 below production's 0.6500",
        ]),
        (m(0.85, 0.20), None, POLICY, [
            "RMSE 0.8500 is above the maximum of 0.8",
            "R² 0.2000 is below the minimum of 0.25",
            "there is no production version yet, so the thresholds alone decide",
        ]),
        (m(0.90, 0.10), m(0.65, 0.35), PromotionPolicy(0.8, 0.25, 0.01, force=True), [
            "RMSE 0.9000 is above the maximum of 0.8",
            "R² 0.1000 is below the minimum of 0.25",
            "RMSE 0.9000 is not at least 0.01 below production's 0.6500",
            "promotion was forced, overriding the rule's verdict",
        ]),
    ],
    ids=["identical-retrain", "beats-prod", "first-fails-both", "forced"],
)  # fmt: skip
def test_reasons_say_in_plain_words_what_held_or_failed(candidate, production, policy, expected):
    assert decide(candidate, production, policy)[1] == expected


def test_explain_puts_the_verdict_first():
    from wine_quality.evaluation import Decision, explain

    promote, reasons, forced = decide(m(0.6505, 0.32), m(0.6505, 0.32), POLICY)
    decision = Decision(
        promote=promote, reasons=reasons, candidate_version="2", candidate_metrics=m(0.6505, 0.32),
        production_version="1", production_metrics=m(0.6505, 0.32), holdout_digest="d",
        holdout_rows=320, forced=forced,
    )  # fmt: skip
    lines = explain(decision).splitlines()
    assert lines[0] == "Decision: keep production. Candidate version 2 vs production version 1"
    assert lines[1:] == [f"  - {reason}" for reason in reasons]


def test_numpy_and_int_inputs_are_accepted():
    # MLflow's MetricThreshold refuses numpy scalars and ints; decide() must cast them.
    policy = PromotionPolicy(max_rmse=np.float64(0.8), min_r2=0, min_improvement=np.float32(0.01))
    promote, _, _ = decide(
        {"rmse": np.float64(0.6), "r2": np.float64(0.3)},
        {"rmse": np.float64(0.7), "r2": np.float64(0.2)},
        policy,
    )
    assert promote
