"""Training logic on the real (small) data: duplicate-safe split, determinism, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wine_quality.config import FEATURES, TARGET
from wine_quality.training import (
    SPLIT_RULE,
    TrainingConfig,
    fit,
    holdout_digest,
    in_holdout,
    regression_metrics,
    row_groups,
    split_holdout,
    split_rule,
)

SMALL_GRID = TrainingConfig(alphas=(0.01, 0.1), l1_ratios=(0.5, 1.0), cv_folds=3)


def test_real_file_has_the_documented_duplicates(wine_frame):
    assert int(wine_frame.duplicated().sum()) == 240


def test_no_duplicate_row_on_both_sides_of_the_split(wine_frame):
    train, holdout = split_holdout(wine_frame, 0.2)
    assert len(train) + len(holdout) == len(wine_frame)
    shared = set(row_groups(train)) & set(row_groups(holdout))
    assert shared == set()
    assert 0.15 < len(holdout) / len(wine_frame) < 0.25


def test_split_and_digest_are_deterministic(wine_frame):
    _, first = split_holdout(wine_frame, 0.2)
    _, again = split_holdout(wine_frame.sample(frac=1.0, random_state=3), 0.2)
    _, other = split_holdout(wine_frame, 0.3)
    # Row order does not matter to the side a row is on; only its content does.
    assert sorted(row_groups(first)) == sorted(row_groups(again))
    assert holdout_digest(first) == holdout_digest(first.copy())
    assert holdout_digest(first) != holdout_digest(other)


def test_appending_rows_never_moves_an_existing_row_across_the_line(wine_frame):
    rng = np.random.default_rng(0)
    # New data: noisy resamples of the file, appended after the existing rows.
    extra = wine_frame.sample(n=4000, replace=True, random_state=1).reset_index(drop=True)
    features = list(FEATURES)
    extra[features] = extra[features] * (1 + rng.normal(0, 0.01, size=(len(extra), len(features))))
    grown = pd.concat([wine_frame, extra], ignore_index=True)
    before = in_holdout(wine_frame, 0.2)
    after = in_holdout(grown, 0.2)[: len(wine_frame)]
    assert (before == after).all()
    # And rows dropped from the file do not move the others either.
    kept = wine_frame.iloc[::2]
    assert (in_holdout(kept, 0.2) == before[::2]).all()


def test_the_side_is_the_same_however_the_file_writes_its_numbers(wine_frame):
    # 29 and 29.0, or the columns in another order, are the same row.
    as_text = wine_frame.astype({"free sulfur dioxide": "float64"})
    shuffled = as_text[list(reversed(as_text.columns))]
    assert (in_holdout(wine_frame, 0.2) == in_holdout(shuffled, 0.2)).all()
    assert split_rule(0.2) == f"{SPLIT_RULE}:0.2"


def test_a_split_that_leaves_a_side_empty_is_refused(wine_frame):
    with pytest.raises(ValueError, match="left"):
        split_holdout(wine_frame.head(1), 0.2)


def test_fit_reports_every_candidate_and_is_deterministic(wine_frame):
    train, holdout = split_holdout(wine_frame, 0.2)
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
