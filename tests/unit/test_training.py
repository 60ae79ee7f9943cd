"""Training logic on the real (small) data: duplicate-safe split, determinism, metrics."""

from __future__ import annotations

import pytest

from wine_quality.config import FEATURES, TARGET
from wine_quality.training import (
    TrainingConfig,
    fit,
    holdout_digest,
    regression_metrics,
    row_groups,
    split_holdout,
)

SMALL_GRID = TrainingConfig(alphas=(0.01, 0.1), l1_ratios=(0.5, 1.0), cv_folds=3)


def test_real_file_has_the_documented_duplicates(wine_frame):
    assert int(wine_frame.duplicated().sum()) == 240


def test_no_duplicate_row_on_both_sides_of_the_split(wine_frame):
    train, holdout = split_holdout(wine_frame, 0.2, seed=42)
    assert len(train) + len(holdout) == len(wine_frame)
    shared = set(row_groups(train)) & set(row_groups(holdout))
    assert shared == set()
    assert 0.15 < len(holdout) / len(wine_frame) < 0.25


def test_split_and_digest_are_deterministic(wine_frame):
    _, first = split_holdout(wine_frame, 0.2, seed=42)
    _, again = split_holdout(wine_frame, 0.2, seed=42)
    _, other = split_holdout(wine_frame, 0.2, seed=7)
    assert holdout_digest(first) == holdout_digest(again)
    assert holdout_digest(first) != holdout_digest(other)


def test_fit_reports_every_candidate_and_is_deterministic(wine_frame):
    train, holdout = split_holdout(wine_frame, 0.2, seed=42)
    model, table = fit(train, SMALL_GRID)
    model_again, _ = fit(train, SMALL_GRID)
    assert len(table) == 4
    assert {(row["alpha"], row["l1_ratio"]) for row in table} == {
        (0.01, 0.5), (0.01, 1.0), (0.1, 0.5), (0.1, 1.0),
    }  # fmt: skip
    assert sorted(row["rank"] for row in table)[0] == 1
    x = holdout.loc[:, list(FEATURES)]
    assert (model.predict(x) == model_again.predict(x)).all()
    metrics = regression_metrics(holdout[TARGET], model.predict(x))
    # ElasticNet on red wine: RMSE ~0.65 and R² ~0.35 are the known ballpark for linear models.
    assert 0.5 < metrics["rmse"] < 0.8
    assert 0.2 < metrics["r2"] < 0.5
    assert all(type(v) is float for v in metrics.values())


def test_metrics_of_a_perfect_and_a_constant_prediction():
    perfect = regression_metrics([3.0, 5.0, 7.0], [3.0, 5.0, 7.0])
    assert perfect == {"rmse": 0.0, "mae": 0.0, "r2": 1.0}
    constant = regression_metrics([3.0, 5.0, 7.0], [5.0, 5.0, 5.0])
    assert constant["r2"] == pytest.approx(0.0)
    assert constant["rmse"] == pytest.approx((8 / 3) ** 0.5)
