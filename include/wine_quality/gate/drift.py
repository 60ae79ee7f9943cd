"""Drift: how far a new data snapshot has moved from the data production's model was trained on.

:func:`compare` measures every feature and the target with two statistics. The population
stability index (PSI) over the baseline's deciles says how much of the mass moved between
ranges; the two-sample Kolmogorov-Smirnov statistic says how far apart the two cumulative
distributions are at their widest. A column has drifted when either reaches its threshold. The
KS p-value is kept in the report but never decides: on thousands of rows every tiny shift is
"significant".
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from wine_quality.core.config import COLUMNS, DEFAULT_DRIFT_KS, DEFAULT_DRIFT_PSI, SEED

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Share given to a bin that holds no rows on one side, so the PSI's logarithm stays finite. A
# decile that empties entirely then adds 0.1 * ln(0.1 / 1e-4) = 0.69, above any sane threshold.
PSI_EPSILON = 1e-4
# Bins of the PSI: the baseline's deciles (fewer when a discrete column repeats its edges).
PSI_BINS = 10
# What a column name may keep in a metric name; anything else becomes an underscore. Stricter
# than MLflow's own rule, so the names also survive a file store and a URL.
_METRIC_UNSAFE = re.compile(r"[^0-9A-Za-z_]+")


@dataclass(frozen=True)
class ColumnDrift:
    """How one column of the new snapshot compares with the baseline.

    Attributes:
        column: The column, named as in :mod:`wine_quality.core.config`.
        psi: Population stability index over the baseline's deciles (0: same shares).
        ks_statistic: Largest gap between the two empirical CDFs (0 to 1).
        ks_pvalue: The KS test's p-value, for the record only.
        baseline_mean: Mean of the baseline (of its sample, when it was sampled).
        current_mean: Mean of the new snapshot (likewise).
        drifted: ``psi >= psi_threshold or ks_statistic >= ks_threshold``.
    """

    column: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    baseline_mean: float
    current_mean: float
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    """Every column's drift, and the thresholds that judged it.

    Attributes:
        columns: The features in config order, then the target.
        psi_threshold: PSI at or above which a column has drifted.
        ks_threshold: KS statistic at or above which a column has drifted.
        baseline_rows: Rows of the baseline frame (all of them, even when a sample was measured).
        current_rows: Rows of the new snapshot (likewise).
    """

    columns: list[ColumnDrift]
    psi_threshold: float
    ks_threshold: float
    baseline_rows: int
    current_rows: int

    @property
    def drift_detected(self) -> bool:
        """Whether any column drifted."""
        return any(column.drifted for column in self.columns)

    @property
    def drifted_features(self) -> list[str]:
        """Names of the drifted columns in report order (the target included)."""
        return [column.column for column in self.columns if column.drifted]

    def metrics(self) -> dict[str, float]:
        """Every statistic under a name MLflow accepts, for ``mlflow.log_metrics``.

        Returns:
            ``drift_psi_<column>`` and ``drift_ks_<column>`` per column (spaces and other
            characters as underscores), ``drift_detected`` (1.0 or 0.0) and ``drift_columns``
            (how many drifted).
        """
        metrics: dict[str, float] = {}
        for column in self.columns:
            name = _METRIC_UNSAFE.sub("_", column.column)
            metrics[f"drift_psi_{name}"] = column.psi
            metrics[f"drift_ks_{name}"] = column.ks_statistic
        metrics["drift_detected"] = float(self.drift_detected)
        metrics["drift_columns"] = float(len(self.drifted_features))
        return metrics

    def reasons(self) -> list[str]:
        """What drifted and by how much, one sentence per drifted column.

        Returns:
            One sentence per drifted column with its PSI, KS statistic, thresholds and means;
            when nothing drifted, one sentence with the thresholds and the largest PSI.
        """
        limits = f"(threshold {self.psi_threshold:g})", f"(threshold {self.ks_threshold:g})"
        drifted = [
            f"{column.column} drifted from production's training data:"
            f" PSI {column.psi:.2f} {limits[0]}, KS {column.ks_statistic:.2f} {limits[1]},"
            f" mean {column.baseline_mean:.4g} -> {column.current_mean:.4g}"
            for column in self.columns
            if column.drifted
        ]
        if drifted:
            return drifted
        sentence = (
            f"no column drifted from production's training data: every PSI is below"
            f" {self.psi_threshold:g} and every KS statistic below {self.ks_threshold:g}"
        )
        largest = max(self.columns, key=lambda column: column.psi, default=None)
        if largest is not None:
            sentence += f" (largest PSI {largest.psi:.3f}, on {largest.column})"
        return [sentence]

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-safe dict, verdict first, for the decision JSON."""
        return {
            "drift_detected": self.drift_detected,
            "drifted_features": self.drifted_features,
            "psi_threshold": self.psi_threshold,
            "ks_threshold": self.ks_threshold,
            "baseline_rows": self.baseline_rows,
            "current_rows": self.current_rows,
            "columns": [asdict(column) for column in self.columns],
        }


def compare(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    *,
    psi_threshold: float = DEFAULT_DRIFT_PSI,
    ks_threshold: float = DEFAULT_DRIFT_KS,
    max_rows: int = 200_000,
    seed: int = SEED,
) -> DriftReport:
    """Measure how far ``current`` has drifted from ``baseline``, column by column.

    A side with more than ``max_rows`` rows is measured on a seeded random sample of
    ``max_rows`` of its rows (the same rows for every column, both statistics), so time and
    memory stay flat however large the frames are; the sample's own noise (about 0.003 of KS at
    200,000 rows) is far below the thresholds. Neither frame is copied or modified: columns are
    read one at a time as float64 arrays of at most ``max_rows`` values.

    Args:
        baseline: The data production's model was trained on.
        current: The new snapshot.
        psi_threshold: PSI at or above which a column has drifted.
        ks_threshold: KS statistic at or above which a column has drifted.
        max_rows: Rows measured per side at most.
        seed: Seed of the samples, so a rerun measures the same rows.

    Returns:
        The report, with the features in config order and then the target.

    Raises:
        ValueError: A column of ``config.COLUMNS`` is missing, duplicated, not numeric or holds
            empty or non-finite values on either side; a side has no rows; a threshold is not
            positive or ``max_rows`` is below 1.
    """
    if psi_threshold <= 0 or ks_threshold <= 0:
        raise ValueError(
            f"drift thresholds must be positive, got PSI {psi_threshold} and KS {ks_threshold}"
        )
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    sides = {"baseline": baseline, "current": current}
    for side, frame in sides.items():
        _check_columns(side, frame)
    # One stream per side, so whether the baseline was sampled never changes current's rows.
    rows = {
        side: _sample(len(frame), max_rows, (seed, index))
        for index, (side, frame) in enumerate(sides.items())
    }
    columns = [
        _column_drift(
            column,
            _values(baseline, column, rows["baseline"], "baseline"),
            _values(current, column, rows["current"], "current"),
            psi_threshold=psi_threshold,
            ks_threshold=ks_threshold,
        )
        for column in COLUMNS
    ]
    return DriftReport(
        columns=columns,
        psi_threshold=float(psi_threshold),
        ks_threshold=float(ks_threshold),
        baseline_rows=len(baseline),
        current_rows=len(current),
    )


def _check_columns(side: str, frame: pd.DataFrame) -> None:
    """Refuse a side that lacks rows or a column the report needs, naming all of them."""
    names = list(frame.columns)
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise ValueError(
            f"{side} frame is missing column{'s' if len(missing) > 1 else ''}"
            f" {', '.join(map(repr, missing))}; drift needs every one of {list(COLUMNS)}"
        )
    duplicated = [column for column in COLUMNS if names.count(column) > 1]
    if duplicated:
        raise ValueError(f"{side} frame has duplicated columns {duplicated}")
    if len(frame) == 0:
        raise ValueError(f"{side} frame has no rows")


def _sample(rows: int, max_rows: int, seed: tuple[int, int]) -> np.ndarray | None:
    """Sorted positions of ``max_rows`` rows drawn without replacement, or None for all rows."""
    if rows <= max_rows:
        return None
    import numpy as np

    # Sorted, so reading a column walks memory forward instead of jumping about.
    return np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))


def _values(frame: pd.DataFrame, column: str, rows: np.ndarray | None, side: str) -> np.ndarray:
    """One column (or its sampled rows) as a float64 array of finite values."""
    import numpy as np

    series = frame[column]
    if rows is not None:
        series = series.iloc[rows]
    try:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{side} column {column!r} is not numeric ({series.dtype})") from exc
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        where = "in its sample" if rows is not None else f"of {len(values)}"
        raise ValueError(
            f"{side} column {column!r} has {bad} empty or non-finite values {where}:"
            " drift is measured on validated data only"
        )
    return values


def _column_drift(
    column: str,
    baseline: np.ndarray,
    current: np.ndarray,
    *,
    psi_threshold: float,
    ks_threshold: float,
) -> ColumnDrift:
    """Both statistics of one column, and whether either crossed its threshold."""
    from scipy import stats

    psi = _psi(baseline, current)
    ks = stats.ks_2samp(baseline, current)
    statistic = float(ks.statistic)
    return ColumnDrift(
        column=column,
        psi=psi,
        ks_statistic=statistic,
        ks_pvalue=float(ks.pvalue),
        baseline_mean=float(baseline.mean()),
        current_mean=float(current.mean()),
        drifted=psi >= psi_threshold or statistic >= ks_threshold,
    )


def _psi(baseline: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of ``current`` over the deciles of ``baseline``.

    Edges are the baseline's inner deciles, repeated ones dropped, so a discrete column (the
    quality score) gets one bin per run of values instead of empty bins between equal edges.
    """
    import numpy as np

    edges = np.unique(np.quantile(baseline, np.arange(1, PSI_BINS) / PSI_BINS))
    expected = _shares(baseline, edges)
    actual = _shares(current, edges)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin, at least :data:`PSI_EPSILON`.

    Bin ``i`` holds ``edges[i-1] < x <= edges[i]``; the outer two are open-ended, so a value
    beyond the baseline's range still lands in a bin and counts as a shift.
    """
    import numpy as np

    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return np.maximum(counts / len(values), PSI_EPSILON)
