"""The decision's figures: the right axes, the numbers in their words, PNG output, no pyplot."""

from __future__ import annotations

import os
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.text import Text

import wine_quality
from wine_quality.gate.drift import ColumnDrift, DriftReport
from wine_quality.gate.plots import (
    ALERT_COLOUR,
    JITTER,
    MUTED_COLOUR,
    bootstrap_figure,
    coefficients_figure,
    drift_figure,
    predictions_figure,
)

ACTUAL = np.array([5, 6, 7, 5, 6, 4, 8, 5])


def png(figure: Figure) -> bytes:
    """Render ``figure`` as PNG (also draws it, which fills in every text)."""
    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def words(figure: Figure) -> str:
    """Every text drawn on ``figure``: titles, labels, legends, annotations, notes."""
    png(figure)
    return "\n".join(text.get_text() for text in figure.findobj(Text) if text.get_text())


def test_predictions_side_by_side_with_rmse_in_every_title():
    figure = predictions_figure(
        ACTUAL, ACTUAL + 0.5, ACTUAL - 1.0,
        candidate_label="candidate v8", production_label="production v7",
    )  # fmt: skip

    assert png(figure).startswith(b"\x89PNG")
    top_left, top_right, bottom_left, bottom_right = figure.axes
    assert top_left.get_title() == "candidate v8: predicted vs actual, RMSE 0.5000"
    assert top_right.get_title() == "production v7: predicted vs actual, RMSE 1.0000"
    assert bottom_left.get_title() == "candidate v8: residuals, RMSE 0.5000"
    assert bottom_right.get_title() == "production v7: residuals, RMSE 1.0000"
    assert top_left.get_shared_y_axes().joined(top_left, top_right)
    assert bottom_left.get_shared_x_axes().joined(bottom_left, bottom_right)
    assert "Candidate and production on the same 8 rows" in words(figure)
    # The residuals are actual - predicted, around the zero line.
    residuals = bottom_right.collections[0].get_offsets()[:, 1]
    np.testing.assert_allclose(residuals, np.ones(len(ACTUAL)))


def test_predictions_without_production_show_the_candidate_alone():
    figure = predictions_figure(
        ACTUAL, ACTUAL + 0.5, None, candidate_label="candidate v1", production_label=None
    )

    assert len(figure.axes) == 2
    assert "Candidate on 8 rows: no production version to compare with" in words(figure)
    assert "production" not in figure.axes[0].get_title()


def test_integer_scores_are_jittered_and_others_are_not():
    jittered = predictions_figure(
        ACTUAL, ACTUAL, None, candidate_label="c", production_label=None
    ).axes[0]
    exact = predictions_figure(
        ACTUAL + 0.25, ACTUAL, None, candidate_label="c", production_label=None
    ).axes[0]

    shown = jittered.collections[0].get_offsets()[:, 0]
    assert not np.array_equal(shown, ACTUAL)
    assert np.all(np.abs(shown - ACTUAL) <= JITTER)
    assert jittered.get_xlabel() == "actual quality (jittered)"
    np.testing.assert_array_equal(exact.collections[0].get_offsets()[:, 0], ACTUAL + 0.25)
    assert exact.get_xlabel() == "actual quality"


@pytest.mark.parametrize(
    ("candidate", "production", "message"),
    [
        (ACTUAL[:-1], None, "candidate has 7 predictions for 8 actual scores"),
        (ACTUAL, ACTUAL[:3], "production has 3 predictions for 8 actual scores"),
        (np.where(ACTUAL == 7, np.nan, ACTUAL), None, "candidate_pred holds 1 non-finite"),
        ([], None, "non-empty 1-D"),
    ],
    ids=["candidate-short", "production-short", "nan", "empty"],
)
def test_predictions_refuse_mismatched_or_broken_arrays(candidate, production, message):
    with pytest.raises(ValueError, match=message):
        predictions_figure(
            ACTUAL, candidate, production, candidate_label="candidate", production_label=None
        )


def test_coefficients_sorted_by_size_with_dropped_features_named():
    features = ["fixed acidity", "citric acid", "alcohol", "volatile acidity", "density"]
    coefficients = [0.05, 0.0, 0.29, -0.2, 0.0]

    figure = coefficients_figure(features, coefficients, title="candidate v8: alpha 0.01")
    text = words(figure)

    (axes,) = figure.axes
    assert axes.get_title() == "candidate v8: alpha 0.01"
    labels = [label.get_text() for label in axes.get_yticklabels()]
    # barh draws upwards: the last label is the top bar, the largest |coefficient|.
    assert labels[::-1] == [
        "alcohol",
        "volatile acidity",
        "fixed acidity",
        "citric acid",
        "density",
    ]
    assert [patch.get_width() for patch in axes.patches][::-1] == [0.29, -0.2, 0.05, 0.0, 0.0]
    assert "dropped by L1 (coefficient 0): citric acid, density" in text
    assert "+0.290" in text
    assert "-0.200" in text
    dropped = [label for label in axes.get_yticklabels() if label.get_text() == "density"]
    assert to_rgba(dropped[0].get_color()) == to_rgba(MUTED_COLOUR)
    assert "per standard deviation" in axes.get_xlabel()


def test_coefficients_with_nothing_dropped_say_so():
    text = words(coefficients_figure(["pH", "alcohol"], [-0.1, 0.3], title="t"))

    assert "dropped by L1: none, every feature kept" in text


@pytest.mark.parametrize(
    ("features", "coefficients"),
    [(["pH", "alcohol"], [0.1]), ([], []), (["pH"], [float("nan")])],
    ids=["count-mismatch", "empty", "nan"],
)
def test_coefficients_refuse_bad_input(features, coefficients):
    with pytest.raises(ValueError, match=r"features for|finite"):
        coefficients_figure(features, coefficients, title="t")


def bootstrap_lines(figure: Figure) -> list[float]:
    return sorted(float(line.get_xdata()[0]) for line in figure.axes[0].lines)


def test_bootstrap_marks_interval_zero_and_margin_and_says_why_not_promoted():
    deltas = np.random.default_rng(0).normal(-0.01, 0.006, 500)

    figure = bootstrap_figure(deltas, ci_low=-0.0227, ci_high=0.0021, level=0.95, margin=0.005)
    text = words(figure)

    assert len(figure.axes) == 1
    assert bootstrap_lines(figure) == [-0.0227, -0.005, 0.0, 0.0021]
    assert "ci_high +0.0021 >= -margin -0.0050: not better by the margin" in text
    assert "95 % interval [-0.0227, +0.0021]" in text
    assert "promote needs ci_high < -margin" in text
    assert "500 resamples" in text
    assert sum(patch.get_height() for patch in figure.axes[0].patches) == 500


def test_bootstrap_says_when_the_candidate_is_better_by_the_margin():
    figure = bootstrap_figure(
        [-0.03, -0.02, -0.025], ci_low=-0.0299, ci_high=-0.0201, level=0.9, margin=0.005
    )

    assert "ci_high -0.0201 < -margin -0.0050: better by the margin" in words(figure)
    assert "90 % interval" in words(figure)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ci_low": 0.01, "ci_high": -0.01}, "is above ci_high"),
        ({"level": 95.0}, "fraction"),
        ({"margin": -0.005}, "at least 0"),
    ],
    ids=["interval-reversed", "level-as-percent", "negative-margin"],
)
def test_bootstrap_refuses_bad_bounds(kwargs, message):
    settings = {"ci_low": -0.02, "ci_high": 0.0, "level": 0.95, "margin": 0.005} | kwargs
    with pytest.raises(ValueError, match=message):
        bootstrap_figure([-0.01, 0.0], **settings)


def report(*drifted: str) -> DriftReport:
    def column(name: str, psi: float, ks: float) -> ColumnDrift:
        hot = name in drifted
        return ColumnDrift(name, psi * (50 if hot else 1), ks * (20 if hot else 1), 0.5, 1, 1, hot)

    return DriftReport(
        columns=[column("pH", 0.01, 0.02), column("alcohol", 0.1, 0.03), column("quality", 0, 0)],
        psi_threshold=0.2, ks_threshold=0.1, baseline_rows=1599, current_rows=800,
    )  # fmt: skip


def test_drift_shows_both_statistics_with_thresholds_and_highlights_drift():
    figure = drift_figure(report("alcohol"))
    text = words(figure)

    psi_axes, ks_axes = figure.axes
    assert psi_axes.get_title() == "PSI per column (threshold 0.2)"
    assert ks_axes.get_title() == "KS statistic per column (threshold 0.1)"
    assert [float(line.get_xdata()[0]) for line in psi_axes.lines] == [0.2]
    assert [float(line.get_xdata()[0]) for line in ks_axes.lines] == [0.1]
    assert "1 of 3 columns drifted (alcohol)" in text
    assert "(1,599 rows) in 800 new rows" in text
    assert "5.000" in text  # alcohol's PSI
    assert "0.600" in text  # alcohol's KS
    bars = [to_rgba(patch.get_facecolor()) for patch in psi_axes.patches]
    assert bars == [to_rgba(MUTED_COLOUR), to_rgba(ALERT_COLOUR), to_rgba(MUTED_COLOUR)]
    labels = {label.get_text(): label.get_color() for label in psi_axes.get_yticklabels()}
    assert to_rgba(labels["alcohol"]) == to_rgba(ALERT_COLOUR)
    # The report's first column is the top row.
    assert psi_axes.yaxis_inverted()


def test_drift_without_drift_says_none():
    assert "none of 3 columns drifted" in words(drift_figure(report()))


def test_drift_of_an_empty_report_is_refused():
    empty = DriftReport(
        columns=[], psi_threshold=0.2, ks_threshold=0.1, baseline_rows=0, current_rows=0
    )
    with pytest.raises(ValueError, match="no columns"):
        drift_figure(empty)


def test_importing_plots_loads_no_matplotlib_and_drawing_needs_no_pyplot():
    code = (
        "import sys, io, wine_quality.gate.plots as plots\n"
        "heavy = {'matplotlib', 'numpy', 'pandas', 'scipy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "figure = plots.coefficients_figure(['pH'], [0.1], title='t')\n"
        "figure.savefig(io.BytesIO(), format='png')\n"
        "assert 'matplotlib' in sys.modules\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    include = Path(wine_quality.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(include), "MPLBACKEND": "", "DISPLAY": ""}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_a_large_holdout_is_drawn_from_a_sample_but_scored_on_every_row():
    rng = np.random.default_rng(0)
    y = rng.integers(3, 9, 50_000).astype("float64")
    candidate = y + rng.normal(0, 0.5, len(y))
    production = y + rng.normal(0, 0.7, len(y))
    figure = predictions_figure(
        y, candidate, production, candidate_label="c", production_label="p", max_points=1000
    )
    top = figure.axes[0]
    assert len(top.collections[0].get_offsets()) == 1000
    rmse = float(np.sqrt(np.mean((candidate - y) ** 2)))
    assert f"RMSE {rmse:.4f}" in top.get_title()
    assert "50,000 rows (1,000 drawn)" in figure.get_suptitle()
