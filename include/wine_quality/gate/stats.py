"""Statistics the project quotes: the percentile of the canary's latency budget and of
``make bench``, and the promotion gate's paired bootstrap interval of ΔRMSE."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a p95 of 20 samples is a real sample).

    Returns:
        The smallest value with at least ``q`` percent of the values at or below it; NaN when
        there are no values.
    """
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class DeltaInterval:
    """A confidence interval for ΔRMSE = candidate - production on the same rows.

    Attributes:
        delta: ΔRMSE on all the rows (negative: the candidate is better).
        low: Lower bound of the interval.
        high: Upper bound; the gate promotes only when it is below -margin.
        level: Confidence level, e.g. 0.95.
        resamples: Bootstrap resamples drawn.
        rows: Rows the resamples were drawn from.
        seed: Seed of the resampling (the same seed gives the same interval).
    """

    delta: float
    low: float
    high: float
    level: float
    resamples: int
    rows: int
    seed: int


def paired_bootstrap_delta_rmse(
    y_true: Any,
    candidate_pred: Any,
    production_pred: Any,
    *,
    level: float,
    resamples: int,
    seed: int,
    max_rows: int = 100_000,
) -> tuple[DeltaInterval, np.ndarray]:
    """Percentile interval of ΔRMSE from paired resamples of the per-row squared errors.

    Paired: each resample draws rows, and both models are scored on the very same draw, so the
    rows' shared difficulty cancels out and only the models' difference is left. Beyond
    ``max_rows`` rows a seeded sample of ``max_rows`` pairs is resampled instead, which only
    widens the interval (a stricter gate) and keeps the cost bounded for very large holdouts.

    Returns:
        The interval, and the bootstrap distribution of ΔRMSE (for the plot).

    Raises:
        ValueError: Fewer than two rows, or arrays of different lengths.
    """
    import numpy as np
    from scipy.stats import bootstrap

    y = np.asarray(y_true, dtype="float64")
    cand = np.asarray(candidate_pred, dtype="float64")
    prod = np.asarray(production_pred, dtype="float64")
    if not len(y) == len(cand) == len(prod):
        raise ValueError(
            f"lengths differ: {len(y)} targets, {len(cand)} and {len(prod)} predictions"
        )
    if len(y) < 2:
        raise ValueError(f"a bootstrap needs at least two rows, got {len(y)}")
    cand_se, prod_se = (cand - y) ** 2, (prod - y) ** 2
    delta = float(np.sqrt(cand_se.mean()) - np.sqrt(prod_se.mean()))
    rng = np.random.default_rng(seed)
    if len(y) > max_rows:
        keep = rng.choice(len(y), size=max_rows, replace=False)
        cand_se, prod_se = cand_se[keep], prod_se[keep]

    def delta_rmse(c: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.sqrt(c.mean(axis=axis)) - np.sqrt(p.mean(axis=axis))

    result = bootstrap(
        (cand_se, prod_se),
        delta_rmse,
        n_resamples=resamples,
        # About 16 MB of indices per batch, whatever the holdout's size.
        batch=max(1, 2_000_000 // len(cand_se)),
        vectorized=True,
        paired=True,
        confidence_level=level,
        # BCa needs a jackknife over every row (quadratic); the percentile interval does not.
        method="percentile",
        rng=rng,
    )
    interval = DeltaInterval(
        delta=delta,
        low=float(result.confidence_interval.low),
        high=float(result.confidence_interval.high),
        level=float(level),
        resamples=int(resamples),
        rows=len(cand_se),
        seed=int(seed),
    )
    return interval, np.asarray(result.bootstrap_distribution, dtype="float64")
