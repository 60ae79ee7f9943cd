"""The promotion rule as a table: every branch, including the traps of MLflow's validator.

Against production the rule reads the interval of ΔRMSE (candidate - production): the tables
give it directly; tests/unit/test_significance.py computes it from real models.
"""

from __future__ import annotations

import numpy as np
import pytest

from wine_quality.gate.evaluate import PromotionPolicy, decide
from wine_quality.gate.stats import DeltaInterval

POLICY = PromotionPolicy(max_rmse=0.8, min_r2=0.25, min_improvement=0.01)


def m(rmse: float, r2: float) -> dict[str, float]:
    return {"rmse": rmse, "r2": r2, "mae": rmse * 0.8}


def ci(candidate: dict[str, float], production: dict[str, float] | None, half_width: float):
    """An interval of ΔRMSE centred on the metrics' difference (None without production)."""
    if production is None:
        return None
    delta = candidate["rmse"] - production["rmse"]
    return DeltaInterval(delta, delta - half_width, delta + half_width, 0.95, 2000, 320, 42)


@pytest.mark.parametrize(
    ("candidate", "production", "half_width", "policy", "promote", "forced"),
    [
        # first model: absolute thresholds alone decide
        (m(0.65, 0.35), None, 0, POLICY, True, False),
        (m(0.85, 0.35), None, 0, POLICY, False, False),  # RMSE above the maximum
        (m(0.65, 0.20), None, 0, POLICY, False, False),  # R² below the minimum
        # against production: the whole interval must lie below -margin, thresholds still hold
        (m(0.60, 0.40), m(0.65, 0.35), 0.02, POLICY, True, False),  # [-0.07, -0.03]
        (m(0.60, 0.40), m(0.65, 0.35), 0.045, POLICY, False, False),  # [-0.095, -0.005]: noise
        (m(0.635, 0.36), m(0.65, 0.35), 0.001, POLICY, True, False),  # tight: [-0.016, -0.014]
        (m(0.645, 0.36), m(0.65, 0.35), 0.001, POLICY, False, False),  # better, under the margin
        (m(0.65, 0.35), m(0.65, 0.35), 0.0, POLICY, False, False),  # identical retrain
        (m(0.70, 0.30), m(0.65, 0.35), 0.02, POLICY, False, False),  # worse
        (m(0.79, 0.24), m(0.95, 0.10), 0.02, POLICY, False, False),  # beats a bad prod, fails R²
        # forced: promoted whatever the rule says, and reported as forced
        (m(0.90, 0.10), m(0.65, 0.35), 0.02, PromotionPolicy(0.8, 0.25, 0.01, force=True),
         True, True),
    ],
    ids=[
        "first-ok", "first-rmse-too-high", "first-r2-too-low", "beats-prod-beyond-noise",
        "beats-prod-within-noise", "tight-interval-beyond-margin", "under-margin", "identical",
        "worse", "beats-bad-prod-but-fails-r2", "forced",
    ],
)  # fmt: skip
def test_decision_table(candidate, production, half_width, policy, promote, forced):
    interval = ci(candidate, production, half_width)
    got_promote, reasons, got_forced = decide(candidate, production, policy, interval)
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
            "RMSE 0.6505 vs production's 0.6505: the difference is +0.0000, and its 95% interval"
            " is [-0.0100, +0.0100] (2000 paired resamples of 320 holdout rows); it does not lie"
            " entirely more than 0.005 below zero, so the candidate is not better beyond the"
            " noise",
        ]),
        (m(0.60, 0.40), m(0.65, 0.35), POLICY, [
            "RMSE 0.6000 is at most the maximum of 0.8",
            "R² 0.4000 is at least the minimum of 0.25",
            "RMSE 0.6000 vs production's 0.6500: the difference is -0.0500, and its 95% interval"
            " is [-0.0600, -0.0400] (2000 paired resamples of 320 holdout rows); all of it is"
            " more than 0.01 below zero",
        ]),
        (m(0.85, 0.20), None, POLICY, [
            "RMSE 0.8500 is above the maximum of 0.8",
            "R² 0.2000 is below the minimum of 0.25",
            "there is no production version yet, so the thresholds alone decide",
        ]),
        (m(0.90, 0.10), m(0.65, 0.35), PromotionPolicy(0.8, 0.25, 0.01, force=True), [
            "RMSE 0.9000 is above the maximum of 0.8",
            "R² 0.1000 is below the minimum of 0.25",
            "RMSE 0.9000 vs production's 0.6500: the difference is +0.2500, and its 95% interval"
            " is [+0.2400, +0.2600] (2000 paired resamples of 320 holdout rows); it does not lie"
            " entirely more than 0.01 below zero, so the candidate is not better beyond the"
            " noise",
            "promotion was forced, overriding the rule's verdict",
        ]),
    ],
    ids=["identical-retrain", "beats-prod", "first-fails-both", "forced"],
)  # fmt: skip
def test_reasons_say_in_plain_words_what_held_or_failed(candidate, production, policy, expected):
    half_width = 0.0 if production is None else 0.01
    assert decide(candidate, production, policy, ci(candidate, production, half_width))[1] == (
        expected
    )


def test_a_blocker_refuses_promotion_unless_forced():
    blocker = "production's training data cannot be read back (gone)"
    promote, reasons, forced = decide(m(0.5, 0.5), m(0.65, 0.35), POLICY, blocker=blocker)
    assert (promote, forced) == (False, False)
    assert f"{blocker}, so the comparison cannot be trusted" in reasons
    forced_policy = PromotionPolicy(0.8, 0.25, 0.01, force=True)
    assert decide(m(0.5, 0.5), m(0.65, 0.35), forced_policy, blocker=blocker)[:3:2] == (True, True)


def test_production_without_an_interval_is_a_programming_error():
    with pytest.raises(ValueError, match="interval"):
        decide(m(0.6, 0.4), m(0.65, 0.35), POLICY)


def test_explain_puts_the_verdict_first():
    from wine_quality.gate.evaluate import Decision, explain

    promote, reasons, forced = decide(
        m(0.6505, 0.32), m(0.6505, 0.32), POLICY, ci(m(0.6505, 0.32), m(0.6505, 0.32), 0.01)
    )
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
        DeltaInterval(-0.1, -0.12, -0.08, 0.95, 2000, 320, 42),
    )
    assert promote
