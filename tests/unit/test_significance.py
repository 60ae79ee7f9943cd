"""The promotion gate's paired bootstrap: noise is refused, a real improvement is promoted.

Models are real (fitted on the shipped file's content-hash split); only the "lucky" candidate
is built from production's predictions, because no honest retrain lands reliably inside the
noise band the test needs.
"""

from __future__ import annotations

import numpy as np
import pytest

from wine_quality.core.config import FEATURES, TARGET
from wine_quality.data.holdout import split_holdout
from wine_quality.gate.evaluate import PromotionPolicy, decide
from wine_quality.gate.stats import paired_bootstrap_delta_rmse
from wine_quality.model.search import TrainingConfig, fit, regression_metrics

POLICY = PromotionPolicy(max_rmse=0.8, min_r2=0.25, min_improvement=0.005)
GRID = TrainingConfig(alphas=(0.01,), l1_ratios=(0.5,), cv_folds=3)


@pytest.fixture(scope="module")
def split(wine_frame):
    return split_holdout(wine_frame, 0.2)


@pytest.fixture(scope="module")
def production(split):
    train, holdout = split
    model, _ = fit(train, GRID)
    return model.predict(holdout.loc[:, list(FEATURES)])


def gate(y, candidate_pred, production_pred, policy=POLICY, seed=42):
    interval, deltas = paired_bootstrap_delta_rmse(
        y, candidate_pred, production_pred, level=0.95, resamples=2000, seed=seed
    )
    promote, reasons, _ = decide(
        regression_metrics(y, candidate_pred),
        regression_metrics(y, production_pred),
        policy,
        interval,
    )
    return promote, reasons, interval, deltas


def test_a_candidate_better_by_less_than_the_noise_is_refused(split, production):
    _, holdout = split
    y = holdout[TARGET].to_numpy(dtype="float64")
    rng = np.random.default_rng(7)
    # Production's errors shrunk by 1.5 % plus row-level noise: lower RMSE by more than the
    # margin on these rows, which the old "RMSE lower by 0.005" rule promoted.
    lucky = y + (production - y) * 0.985 + rng.normal(0, 0.1, len(y))
    promote, reasons, interval, _ = gate(y, lucky, production)
    assert interval.delta < -POLICY.min_improvement  # the old rule would have promoted it
    assert interval.low < interval.delta < interval.high
    assert interval.high > -POLICY.min_improvement
    assert not promote
    assert "not better beyond the noise" in reasons[-1]


def test_a_clearly_better_candidate_is_promoted(split, production):
    train, holdout = split
    y = holdout[TARGET].to_numpy(dtype="float64")
    # Production trained on corrupted labels: its targets shuffled across rows.
    corrupted = train.copy()
    corrupted[TARGET] = np.random.default_rng(3).permutation(corrupted[TARGET].to_numpy())
    bad_model, _ = fit(corrupted, GRID)
    bad = bad_model.predict(holdout.loc[:, list(FEATURES)])
    promote, reasons, interval, _ = gate(y, production, bad)
    assert interval.high < -POLICY.min_improvement
    assert promote
    assert "all of it is more than 0.005 below zero" in reasons[-1]


def test_the_interval_is_reproducible_for_a_fixed_seed(split, production):
    _, holdout = split
    y = holdout[TARGET].to_numpy(dtype="float64")
    other = y + (production - y) * 0.99
    first = gate(y, other, production, seed=42)
    again = gate(y, other, production, seed=42)
    reseeded = gate(y, other, production, seed=43)
    assert first[2] == again[2]
    assert np.array_equal(first[3], again[3])
    assert (reseeded[2].low, reseeded[2].high) != (first[2].low, first[2].high)
    assert len(first[3]) == 2000


def test_an_identical_retrain_has_a_zero_width_interval_and_is_kept(split, production):
    _, holdout = split
    y = holdout[TARGET].to_numpy(dtype="float64")
    promote, _, interval, _ = gate(y, production.copy(), production)
    assert (interval.low, interval.delta, interval.high) == (0.0, 0.0, 0.0)
    assert not promote


def test_large_holdouts_are_resampled_from_a_bounded_sample():
    rng = np.random.default_rng(0)
    y = rng.integers(3, 9, 250_000).astype("float64")
    production = y + rng.normal(0, 0.65, len(y))
    candidate = y + (production - y) * 0.9
    interval, deltas = paired_bootstrap_delta_rmse(
        y, candidate, production, level=0.9, resamples=200, seed=1, max_rows=20_000
    )
    assert interval.rows == 20_000
    assert interval.low <= interval.delta <= interval.high  # the point estimate uses every row
    assert interval.high < 0
    assert deltas.shape == (200,)


@pytest.mark.parametrize(
    ("y", "c", "p", "message"),
    [([1.0], [1.0], [1.0], "at least two"), ([1.0, 2.0], [1.0], [1.0, 2.0], "lengths differ")],
)
def test_bad_inputs_are_refused(y, c, p, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap_delta_rmse(y, c, p, level=0.95, resamples=100, seed=0)
