"""The promotion decision's pictures, as matplotlib figures ready for ``mlflow.log_figure``.

Every function builds a :class:`matplotlib.figure.Figure` directly, never through pyplot: no
global figure registry to leak into, no backend to choose, and it draws the same with no display
(``savefig`` renders through Agg on its own). Each figure carries its numbers in its titles and
labels, so a person reading it in the MLflow UI needs nothing else. matplotlib and numpy are
imported only when a figure is built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

    from wine_quality.gate.drift import DriftReport

CANDIDATE_COLOUR = "tab:blue"
PRODUCTION_COLOUR = "tab:orange"
POSITIVE_COLOUR = "tab:green"
NEGATIVE_COLOUR = "tab:purple"
MUTED_COLOUR = "0.6"
ALERT_COLOUR = "tab:red"
# Half-width of the noise added to an integer score on the predicted-vs-actual plot: without it
# a score's hundreds of points sit on one vertical line; 0.15 keeps scores well apart.
JITTER = 0.15


def predictions_figure(
    y_true: ArrayLike,
    candidate_pred: ArrayLike,
    production_pred: ArrayLike | None,
    *,
    candidate_label: str,
    production_label: str | None,
    max_points: int = 5000,
) -> Figure:
    """Predicted against actual, and residuals, for the candidate and production side by side.

    One column per model, axes shared along each row so the two models read on the same scale.
    The top row plots prediction against the actual score (jittered when the scores are
    integers) with the line of perfect prediction; the bottom row plots residuals against the
    prediction with a zero line. Every title carries the model's RMSE.

    Args:
        y_true: Actual scores.
        candidate_pred: The candidate's predictions of the same rows.
        production_pred: Production's predictions, or None when there is no production version
            (the figure then has the candidate's column only, and says so).
        candidate_label: Name of the candidate in titles, e.g. ``candidate v7``.
        production_label: Name of production in titles (``production`` when None).
        max_points: At most this many rows are drawn (a seeded sample, the same for both
            models); the RMSEs are always of every row. A million dots draw slowly and show no
            more than five thousand.

    Returns:
        A figure with 2 axes per model.

    Raises:
        ValueError: The arrays are empty, not one-dimensional, not finite or of unequal length.
    """
    import numpy as np
    from matplotlib.figure import Figure

    actual = _vector(y_true, "y_true")
    models = [(candidate_label, _vector(candidate_pred, "candidate_pred"), CANDIDATE_COLOUR)]
    if production_pred is not None:
        production = _vector(production_pred, "production_pred")
        models.append((production_label or "production", production, PRODUCTION_COLOUR))
    for label, predicted, _ in models:
        if len(predicted) != len(actual):
            raise ValueError(
                f"{label} has {len(predicted)} predictions for {len(actual)} actual scores"
            )

    rmses = [math.sqrt(float(np.mean((predicted - actual) ** 2))) for _, predicted, _ in models]
    total = len(actual)
    if total > max_points:
        # Seeded, so the same decision always draws the same picture.
        drawn = np.sort(np.random.default_rng(0).choice(total, size=max_points, replace=False))
        actual = actual[drawn]
        models = [(label, predicted[drawn], colour) for label, predicted, colour in models]
    shown = actual
    if np.all(actual == np.round(actual)):
        shown = actual + np.random.default_rng(0).uniform(-JITTER, JITTER, len(actual))
    low = min(float(shown.min()), *(float(predicted.min()) for _, predicted, _ in models))
    high = max(float(shown.max()), *(float(predicted.max()) for _, predicted, _ in models))

    figure = Figure(figsize=(5.5 * len(models), 8.5), layout="constrained")
    axes = figure.subplots(2, len(models), sharex="row", sharey="row", squeeze=False)
    for index, ((label, predicted, colour), rmse) in enumerate(zip(models, rmses, strict=True)):
        top, bottom = axes[0, index], axes[1, index]
        top.scatter(shown, predicted, s=9, alpha=0.35, color=colour, linewidths=0)
        top.plot([low, high], [low, high], color="black", linewidth=1, label="perfect: y = x")
        top.set_title(f"{label}: predicted vs actual, RMSE {rmse:.4f}")
        top.set_xlabel("actual quality" + (" (jittered)" if shown is not actual else ""))
        top.set_ylabel("predicted quality")
        top.legend(loc="upper left", fontsize="small")
        bottom.scatter(predicted, actual - predicted, s=9, alpha=0.35, color=colour, linewidths=0)
        bottom.axhline(0.0, color="black", linewidth=1)
        bottom.set_title(f"{label}: residuals, RMSE {rmse:.4f}")
        bottom.set_xlabel("predicted quality")
        bottom.set_ylabel("residual (actual - predicted)")
    rows = f"{total:,} rows" + (f" ({len(actual):,} drawn)" if len(actual) < total else "")
    figure.suptitle(
        f"Candidate and production on the same {rows}"
        if production_pred is not None
        else f"Candidate on {rows}: no production version to compare with"
    )
    return figure


def coefficients_figure(
    features: Sequence[str], coefficients: Sequence[float], *, title: str
) -> Figure:
    """The model's coefficients as horizontal bars, largest effect on top.

    The pipeline standardises every feature before the ElasticNet, so each coefficient is the
    change in predicted quality per standard deviation of its feature, and bars compare across
    features. A coefficient of exactly 0 is a feature the L1 penalty dropped: it is drawn as a
    grey cross instead of a bar and listed in a note under the chart.

    Args:
        features: Feature names, in the order of ``coefficients``.
        coefficients: The fitted ElasticNet's ``coef_``.
        title: Title of the chart, e.g. the model version and its hyperparameters.

    Returns:
        A figure with one axes.

    Raises:
        ValueError: No features, a count that differs from the coefficients', or a non-finite
            coefficient.
    """
    from matplotlib.figure import Figure

    names = list(features)
    values = [float(value) for value in coefficients]
    if not names or len(names) != len(values):
        raise ValueError(f"{len(names)} features for {len(values)} coefficients")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"coefficients must be finite, got {values}")
    # barh draws the first bar at the bottom: ascending size puts the largest on top, and ties
    # in reverse input order read top-down in the input's order.
    ordered = [
        (names[index], values[index])
        for index in sorted(range(len(names)), key=lambda index: (abs(values[index]), -index))
    ]
    dropped = [name for name, value in zip(names, values, strict=True) if value == 0.0]
    colours = [
        POSITIVE_COLOUR if value > 0 else NEGATIVE_COLOUR if value < 0 else MUTED_COLOUR
        for _, value in ordered
    ]
    positions = list(range(len(ordered)))

    figure = Figure(figsize=(8, 1.8 + 0.42 * len(ordered)), layout="constrained")
    axes = figure.subplots()
    axes.barh(positions, [value for _, value in ordered], color=colours)
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_yticks(positions, labels=[name for name, _ in ordered])
    for position, (_, value) in enumerate(ordered):
        if value == 0.0:
            axes.plot(0.0, position, marker="x", color=MUTED_COLOUR, markersize=8)
            axes.get_yticklabels()[position].set_color(MUTED_COLOUR)
        else:
            axes.annotate(
                f"{value:+.3f}",
                (value, position),
                xytext=(4 if value > 0 else -4, 0),
                textcoords="offset points",
                ha="left" if value > 0 else "right",
                va="center",
                fontsize="small",
            )
    axes.margins(x=0.2)
    axes.set_title(title)
    axes.set_xlabel("change in predicted quality per standard deviation of the feature")
    figure.supxlabel(
        f"dropped by L1 (coefficient 0): {', '.join(dropped)}"
        if dropped
        else "dropped by L1: none, every feature kept",
        fontsize="small",
        color=MUTED_COLOUR if dropped else "black",
    )
    return figure


def bootstrap_figure(
    deltas: ArrayLike, *, ci_low: float, ci_high: float, level: float, margin: float
) -> Figure:
    """The bootstrap distribution of the RMSE difference, with the interval the gate reads.

    ``deltas`` are candidate RMSE minus production RMSE over resamples of the holdout, so
    negative means the candidate is better. The figure marks the interval's bounds, 0 and
    ``-margin``; the candidate is promoted only if the whole interval lies below ``-margin``.

    Args:
        deltas: One RMSE difference per bootstrap resample.
        ci_low: Lower bound of the interval.
        ci_high: Upper bound of the interval.
        level: Confidence level of the interval, as a fraction (0.95).
        margin: Improvement the candidate must show (a positive RMSE difference).

    Returns:
        A figure with one axes.

    Raises:
        ValueError: No deltas or non-finite ones, ``ci_low > ci_high``, a level outside (0, 1)
            or a negative margin.
    """
    from matplotlib.figure import Figure

    values = _vector(deltas, "deltas")
    if not ci_low <= ci_high:
        raise ValueError(f"ci_low {ci_low} is above ci_high {ci_high}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level is a fraction between 0 and 1, got {level}")
    if margin < 0.0:
        raise ValueError(f"margin is an improvement, so at least 0, got {margin}")

    interval = f"{level * 100:g} % interval [{ci_low:+.4f}, {ci_high:+.4f}]"
    if ci_high < -margin:
        verdict = f"ci_high {ci_high:+.4f} < -margin {-margin:+.4f}: better by the margin"
    else:
        verdict = f"ci_high {ci_high:+.4f} >= -margin {-margin:+.4f}: not better by the margin"

    figure = Figure(figsize=(8.5, 4.8), layout="constrained")
    axes = figure.subplots()
    axes.hist(
        values,
        bins=max(10, min(60, round(math.sqrt(len(values))))),
        color=CANDIDATE_COLOUR,
        alpha=0.6,
        label=f"{len(values):,} resamples",
    )
    axes.axvline(ci_low, color=CANDIDATE_COLOUR, linestyle="--", label=interval)
    axes.axvline(ci_high, color=CANDIDATE_COLOUR, linestyle="--")
    axes.axvline(0.0, color="black", linewidth=1, label="0: no difference")
    axes.axvline(
        -margin,
        color=ALERT_COLOUR,
        linestyle=":",
        linewidth=2,
        label=f"-margin = {-margin:+.4f}: promote needs ci_high < -margin",
    )
    axes.set_title(f"Bootstrap of RMSE candidate - production\n{verdict}")
    axes.set_xlabel("delta RMSE = candidate - production (negative: candidate better)")
    axes.set_ylabel("resamples")
    # Below the chart, where it can hide no bar.
    figure.legend(loc="outside lower center", ncols=2, fontsize="small")
    return figure


def drift_figure(report: DriftReport) -> Figure:
    """Each column's PSI and KS statistic against their thresholds, drifted columns in red.

    Args:
        report: The drift of the new snapshot against production's training data.

    Returns:
        A figure with two axes: PSI on the left, KS on the right, columns in report order from
        the top.

    Raises:
        ValueError: The report has no columns.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    columns = report.columns
    if not columns:
        raise ValueError("the drift report has no columns to draw")
    positions = list(range(len(columns)))
    colours = [ALERT_COLOUR if column.drifted else MUTED_COLOUR for column in columns]
    drifted = report.drifted_features

    figure = Figure(figsize=(11, 2.2 + 0.4 * len(columns)), layout="constrained")
    psi_axes, ks_axes = figure.subplots(1, 2, sharey=True)
    panels = (
        (psi_axes, "PSI", [column.psi for column in columns], report.psi_threshold),
        (ks_axes, "KS statistic", [column.ks_statistic for column in columns], report.ks_threshold),
    )
    for axes, name, values, threshold in panels:
        axes.barh(positions, values, color=colours)
        axes.axvline(threshold, color="black", linestyle="--")
        for position, value in zip(positions, values, strict=True):
            axes.annotate(
                f"{value:.3f}",
                (value, position),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
                # Readable where a value sits on the threshold line.
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )
        axes.margins(x=0.15)
        axes.set_title(f"{name} per column (threshold {threshold:g})")
        axes.set_xlabel(name)
    psi_axes.set_yticks(positions, labels=[column.column for column in columns])
    for label, column in zip(psi_axes.get_yticklabels(), columns, strict=True):
        if column.drifted:
            label.set_color(ALERT_COLOUR)
    # The first column on top, as in the report.
    psi_axes.invert_yaxis()
    figure.legend(
        handles=[
            Line2D([], [], color="black", linestyle="--", label="threshold (value in the title)"),
            Patch(color=ALERT_COLOUR, label="drifted"),
            Patch(color=MUTED_COLOUR, label="not drifted"),
        ],
        loc="outside lower center",
        ncols=3,
        fontsize="small",
    )
    figure.suptitle(
        f"Drift against production's training data ({report.baseline_rows:,} rows) in"
        f" {report.current_rows:,} new rows: "
        + (
            f"{len(drifted)} of {len(columns)} columns drifted ({', '.join(drifted)})"
            if drifted
            else f"none of {len(columns)} columns drifted"
        )
    )
    return figure


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a one-dimensional float64 array of finite numbers."""
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(array)).sum())} non-finite values")
    return array
