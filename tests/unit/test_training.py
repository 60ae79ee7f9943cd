"""Training logic on the real (small) data: duplicate-safe split, determinism, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wine_quality.core.config import FEATURES, TARGET
from wine_quality.data.holdout import (
    SPLIT_RULE,
    holdout_digest,
    in_holdout,
    read_holdout,
    row_groups,
    split_holdout,
    split_rule,
    write_holdout,
)
from wine_quality.model.search import TrainingConfig, fit, regression_metrics, search_sample
from wine_quality.model.train import dataset_input

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


def _plain_grid_search(train: pd.DataFrame, cfg: TrainingConfig):
    """The search as it was before the sample: every training row, refit by GridSearchCV."""
    from sklearn.linear_model import ElasticNet
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    search = GridSearchCV(
        Pipeline(
            [
                ("scale", StandardScaler()),
                ("model", ElasticNet(random_state=cfg.seed, max_iter=50_000)),
            ]
        ),
        param_grid={"model__alpha": list(cfg.alphas), "model__l1_ratio": list(cfg.l1_ratios)},
        scoring="neg_root_mean_squared_error",
        cv=GroupKFold(n_splits=cfg.cv_folds),
        refit=True,
    )
    search.fit(train.loc[:, list(FEATURES)], train[TARGET], groups=row_groups(train))
    return search


def test_within_the_cap_fit_is_exactly_the_plain_grid_search(wine_frame):
    # The shipped file (1,279 training rows) is far below the cap: nothing may change for it.
    train, holdout = split_holdout(wine_frame, 0.2)
    cfg = TrainingConfig()
    assert len(train) < cfg.search_rows
    model, table = fit(train, cfg)
    reference = _plain_grid_search(train, cfg)
    best = min(table, key=lambda row: (row["rank"], row["alpha"], row["l1_ratio"]))
    assert reference.best_params_ == {
        "model__alpha": best["alpha"],
        "model__l1_ratio": best["l1_ratio"],
    }
    assert [row["cv_rmse_mean"] for row in table] == list(-reference.cv_results_["mean_test_score"])
    assert {row["cv_rows"] for row in table} == {len(train)}
    x = holdout.loc[:, list(FEATURES)]
    assert (model.predict(x) == reference.best_estimator_.predict(x)).all()
    assert (model["model"].coef_ == reference.best_estimator_["model"].coef_).all()


def test_search_sample_is_bounded_stratified_seeded_and_in_order(wine_frame):
    train, _ = split_holdout(wine_frame, 0.2)
    sample = search_sample(train, 500, seed=42)
    shares = train[TARGET].value_counts()
    assert 0 <= 500 - len(sample) < len(shares)  # each score rounded down
    for score, count in sample[TARGET].value_counts().items():
        assert count == shares[score] * 500 // len(train)
    assert sample.index.is_monotonic_increasing
    assert sample.index.equals(search_sample(train, 500, seed=42).index)
    assert not sample.index.equals(search_sample(train, 500, seed=43).index)
    assert search_sample(train, len(train), seed=42) is train


def test_above_the_cap_the_best_is_refitted_on_every_training_row(wine_frame):
    from sklearn.base import clone

    train, _ = split_holdout(wine_frame, 0.2)
    cfg = TrainingConfig(alphas=(0.01, 0.1), l1_ratios=(0.5,), cv_folds=3, search_rows=400)
    model, table = fit(train, cfg)
    sample = search_sample(train, 400, cfg.seed)
    assert {row["cv_rows"] for row in table} == {len(sample)}
    best = min(table, key=lambda row: (row["rank"], row["alpha"], row["l1_ratio"]))
    assert model["model"].alpha == best["alpha"]
    x, y = train.loc[:, list(FEATURES)], train[TARGET]
    on_all = clone(model).fit(x, y)
    on_sample = clone(model).fit(sample.loc[:, list(FEATURES)], sample[TARGET])
    assert (model["model"].coef_ == on_all["model"].coef_).all()
    assert not np.allclose(model["model"].coef_, on_sample["model"].coef_)
    assert model["scale"].n_samples_seen_ == len(train)


def test_the_holdout_csv_gives_back_the_very_same_rows(wine_frame, tmp_path):
    _, holdout = split_holdout(wine_frame, 0.2)
    rng = np.random.default_rng(0)
    noisy = holdout.copy()
    noisy[list(FEATURES)] = noisy[list(FEATURES)] * rng.uniform(0.9, 1.1, (len(noisy), 11))
    for rows in (holdout, noisy):
        path = tmp_path / "holdout.csv"
        write_holdout(rows, path)
        again = read_holdout(path)
        assert again.equals(rows)
        assert holdout_digest(again) == holdout_digest(rows)
    # What older versions logged (pandas' writer) reads back the same way.
    holdout.to_csv(tmp_path / "old.csv", index=False)
    assert read_holdout(tmp_path / "old.csv").equals(holdout)


def test_dataset_input_is_what_mlflow_logs_less_the_per_cell_scans(wine_frame, tmp_path):
    import json

    import mlflow

    source = str(tmp_path / "winequality-red.csv")
    ours = dataset_input(wine_frame, "winequality-red", source, "4a402cf041b025d4", "training")
    theirs = mlflow.data.from_pandas(
        wine_frame, source=source, targets=TARGET, name="winequality-red"
    ).to_dict()
    dataset = ours.dataset
    assert (dataset.name, dataset.source_type, dataset.source) == (
        theirs["name"], theirs["source_type"], theirs["source"],
    )  # fmt: skip
    assert json.loads(dataset.schema) == json.loads(theirs["schema"])
    assert json.loads(dataset.profile) == {"num_rows": 1599, "num_elements": 1599 * 12}
    assert json.loads(dataset.profile) == json.loads(theirs["profile"])
    assert dataset.digest == "4a402cf041b025d4"
    assert [(tag.key, tag.value) for tag in ours.tags] == [("mlflow.data.context", "training")]
