"""The model and how its hyperparameters are chosen: a seeded grid search on a bounded sample.

The search runs on a stratified sample of at most ``search_rows`` rows, and only the chosen
parameters are fitted on every training row, so training time grows with the data by one fit,
not by the whole grid. The same rows and settings always give the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wine_quality.core import config
from wine_quality.core.config import FEATURES, TARGET
from wine_quality.data.holdout import row_groups

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class TrainingConfig:
    """Run-time knobs of training (the DAG's Params) plus the fixed domain settings."""

    alphas: tuple[float, ...] = config.DEFAULT_ALPHAS
    l1_ratios: tuple[float, ...] = config.DEFAULT_L1_RATIOS
    seed: int = config.SEED
    holdout_fraction: float = config.HOLDOUT_FRACTION
    cv_folds: int = config.CV_FOLDS
    search_rows: int = config.SEARCH_ROWS


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """RMSE, MAE and R² as plain floats (MLflow's validators reject numpy scalars)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "rmse": float(mean_squared_error(y_true, y_pred) ** 0.5),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def search_sample(train: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``train`` for the grid search: all of them if that is all.

    Stratified by quality (each score keeps its share, rounded down) so that the rare scores,
    where a linear model errs most, weigh in the CV error as they do in the data; seeded, and
    in the rows' original order, so the same data always gives the same sample and folds.
    """
    import numpy as np

    if len(train) <= max_rows:
        return train
    scores = train[TARGET].to_numpy()
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(rows, size=len(rows) * max_rows // len(train), replace=False)
        for rows in (np.flatnonzero(scores == score) for score in np.unique(scores))
    ]
    return train.iloc[np.sort(np.concatenate(picked))]


def fit(train: pd.DataFrame, cfg: TrainingConfig) -> tuple[Pipeline, list[dict[str, float]]]:
    """Grid-search alpha x l1_ratio with grouped CV, then fit the best on every row of ``train``.

    The search sees :func:`search_sample` (``cfg.search_rows`` rows at most): beyond that, more
    rows sharpen no CV score the grid can tell apart, and cost 100 fits each. The chosen
    parameters are then fitted on all of ``train``, so no row is wasted on the model itself. On
    data within the cap this is exactly a grid search with refit.

    Returns:
        The fitted pipeline and one row per candidate: params, mean and std of CV RMSE, rank,
        and ``cv_rows`` (the rows the search cross-validated on).
    """
    from sklearn.base import clone
    from sklearn.linear_model import ElasticNet
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            ("model", ElasticNet(random_state=cfg.seed, max_iter=50_000)),
        ]
    )
    search = GridSearchCV(
        pipeline,
        param_grid={
            "model__alpha": [float(a) for a in cfg.alphas],
            "model__l1_ratio": [float(r) for r in cfg.l1_ratios],
        },
        scoring="neg_root_mean_squared_error",
        cv=GroupKFold(n_splits=cfg.cv_folds),
        refit=False,
        n_jobs=1,
    )
    sample = search_sample(train, cfg.search_rows, cfg.seed)
    search.fit(sample.loc[:, list(FEATURES)], sample[TARGET], groups=row_groups(sample))
    results = search.cv_results_
    table = [
        {
            "alpha": float(params["model__alpha"]),
            "l1_ratio": float(params["model__l1_ratio"]),
            "cv_rmse_mean": float(-results["mean_test_score"][i]),
            "cv_rmse_std": float(results["std_test_score"][i]),
            "rank": int(results["rank_test_score"][i]),
            "cv_rows": len(sample),
        }
        for i, params in enumerate(results["params"])
    ]
    # The rule the run records as best (ties: the smaller alpha, then l1_ratio).
    best = min(table, key=lambda row: (row["rank"], row["alpha"], row["l1_ratio"]))
    model = clone(pipeline).set_params(model__alpha=best["alpha"], model__l1_ratio=best["l1_ratio"])
    return model.fit(train.loc[:, list(FEATURES)], train[TARGET]), table
