"""Drift against production's training data: what must drift does, what must not does not."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from wine_quality.core.config import COLUMNS, DEFAULT_DRIFT_KS, DEFAULT_DRIFT_PSI, FEATURES, TARGET
from wine_quality.gate.drift import PSI_EPSILON, ColumnDrift, DriftReport, compare


def small(quality: list[int], alcohol: list[float] | None = None) -> pd.DataFrame:
    """A frame with every column: ``quality``, ``alcohol`` if given, every other feature 0."""
    frame = pd.DataFrame({name: np.zeros(len(quality)) for name in FEATURES})
    if alcohol is not None:
        frame["alcohol"] = alcohol
    frame[TARGET] = quality
    return frame


def test_identical_data_has_no_drift(wine_frame: pd.DataFrame):
    report = compare(wine_frame, wine_frame)

    assert [column.column for column in report.columns] == [*FEATURES, TARGET]
    assert not report.drift_detected
    assert report.drifted_features == []
    assert all(column.psi == pytest.approx(0.0, abs=1e-12) for column in report.columns)
    assert all(column.ks_statistic == 0.0 for column in report.columns)
    assert (report.baseline_rows, report.current_rows) == (1599, 1599)
    assert (report.psi_threshold, report.ks_threshold) == (DEFAULT_DRIFT_PSI, DEFAULT_DRIFT_KS)


def test_alcohol_plus_two_drifts_alone(wine_frame: pd.DataFrame):
    current = wine_frame.assign(alcohol=wine_frame["alcohol"] + 2.0)
    before = (wine_frame.copy(), current.copy())

    report = compare(wine_frame, current)

    assert report.drift_detected
    assert report.drifted_features == ["alcohol"]
    alcohol = report.columns[FEATURES.index("alcohol")]
    assert alcohol.psi > 1.0
    assert alcohol.ks_statistic > 0.5
    assert alcohol.current_mean - alcohol.baseline_mean == pytest.approx(2.0)
    pd.testing.assert_frame_equal(wine_frame, before[0])
    pd.testing.assert_frame_equal(current, before[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_random_80_percent_subset_has_not_drifted(wine_frame: pd.DataFrame, seed: int):
    subset = wine_frame.sample(frac=0.8, random_state=seed)

    report = compare(wine_frame, subset)

    assert report.drifted_features == []
    assert report.current_rows == 1279
    assert max(column.psi for column in report.columns) < DEFAULT_DRIFT_PSI / 10


def test_a_shift_of_the_discrete_target_is_detected(wine_frame: pd.DataFrame):
    # The panel grades more generously: every 5 becomes a 6.
    current = wine_frame.assign(quality=wine_frame[TARGET].replace(5, 6))

    report = compare(wine_frame, current)

    assert report.drifted_features == [TARGET]
    assert report.columns[-1].column == TARGET
    assert report.columns[-1].psi >= DEFAULT_DRIFT_PSI


def test_psi_of_a_discrete_column_matches_the_formula():
    # The deciles of half 5s, half 6s are 5 (four times), 5.5 and 6 (four times): three edges,
    # four bins, two of them empty on both sides. The shares of the others move by 0.3 each way.
    baseline = small([5] * 50 + [6] * 50)
    current = small([5] * 20 + [6] * 80)

    quality = compare(baseline, current).columns[-1]

    assert quality.psi == pytest.approx(0.3 * math.log(2.5) + 0.3 * math.log(1.6), rel=1e-3)
    assert quality.ks_statistic == pytest.approx(0.3)
    assert quality.drifted


def test_values_beyond_the_baseline_range_land_in_the_open_outer_bins():
    baseline = small([5] * 100, alcohol=list(np.linspace(9.0, 11.0, 100)))
    current = small([5] * 100, alcohol=[30.0] * 100)

    alcohol = compare(baseline, current).columns[FEATURES.index("alcohol")]

    # Every decile holds 10 % of the baseline; all of current sits in the open top bin, and the
    # nine others are empty, so they count as PSI_EPSILON.
    expected = (1 - 0.1) * math.log(1 / 0.1) + 9 * (PSI_EPSILON - 0.1) * math.log(PSI_EPSILON / 0.1)
    assert alcohol.psi == pytest.approx(expected, rel=1e-3)
    assert math.isfinite(alcohol.psi)
    assert alcohol.ks_statistic == 1.0


def test_either_statistic_at_its_threshold_is_drift():
    baseline = small([5] * 50 + [6] * 50)
    current = small([5] * 20 + [6] * 80)
    measured = compare(baseline, current).columns[-1]

    def drifted(psi_threshold: float, ks_threshold: float) -> list[str]:
        return compare(
            baseline, current, psi_threshold=psi_threshold, ks_threshold=ks_threshold
        ).drifted_features

    assert drifted(measured.psi, 1.0) == [TARGET]
    assert drifted(100.0, measured.ks_statistic) == [TARGET]
    assert drifted(measured.psi * 1.001, measured.ks_statistic + 0.001) == []


def test_sampling_measures_max_rows_per_side_with_a_seed(wine_frame: pd.DataFrame):
    rows = np.random.default_rng(7).integers(0, len(wine_frame), 20_000)
    large = wine_frame.iloc[rows].reset_index(drop=True)

    whole = compare(large, large, max_rows=len(large))
    sampled = compare(large, large, max_rows=2_000)
    again = compare(large, large, max_rows=2_000)
    reseeded = compare(large, large, max_rows=2_000, seed=1)

    # All rows: exactly equal. Sampled: each side its own 2,000 rows, so not quite equal, yet
    # far from drift; the same seed measures the same rows, another seed other rows.
    assert all(column.ks_statistic == 0.0 for column in whole.columns)
    assert max(column.ks_statistic for column in sampled.columns) > 0.0
    assert sampled.drifted_features == []
    assert sampled == again
    assert sampled != reseeded
    assert (sampled.baseline_rows, sampled.current_rows) == (20_000, 20_000)
    shifted = compare(large, large.assign(alcohol=large["alcohol"] + 2.0), max_rows=2_000)
    assert shifted.drifted_features == ["alcohol"]


def test_empty_cells_in_a_sample_are_reported_as_such(wine_frame: pd.DataFrame):
    rows = np.random.default_rng(3).integers(0, len(wine_frame), 5_000)
    large = wine_frame.iloc[rows].reset_index(drop=True)
    large["pH"] = np.nan

    with pytest.raises(ValueError, match=r"current column 'pH' has 100 empty .* in its sample"):
        compare(wine_frame, large, max_rows=100)


@pytest.mark.parametrize("side", ["baseline", "current"])
def test_a_missing_column_is_named(wine_frame: pd.DataFrame, side: str):
    broken = wine_frame.drop(columns=["pH", TARGET])
    frames = (broken, wine_frame) if side == "baseline" else (wine_frame, broken)

    with pytest.raises(ValueError, match=rf"^{side} frame is missing columns 'pH', 'quality'"):
        compare(*frames)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(pH=f["pH"].astype(object).where(f.index != 3, "3,2")), "not numeric"),
        (lambda f: f.assign(pH=f["pH"].where(f.index != 3, np.nan)), "1 empty or non-finite"),
        (lambda f: f.assign(density=f["density"].where(f.index != 4, np.inf)), "'density' has 1"),
        (lambda f: f.iloc[:0], "current frame has no rows"),
        (lambda f: f.rename(columns={"alcohol": "pH"}), "missing column 'alcohol'"),
    ],
    ids=["text", "nan", "inf", "empty", "renamed-to-a-duplicate"],
)
def test_unusable_data_is_refused(wine_frame: pd.DataFrame, change, message: str):
    with pytest.raises(ValueError, match=message):
        compare(wine_frame, change(wine_frame))


@pytest.mark.parametrize(
    "kwargs", [{"psi_threshold": 0.0}, {"ks_threshold": -0.1}, {"max_rows": 0}]
)
def test_bad_settings_are_refused(wine_frame: pd.DataFrame, kwargs: dict):
    with pytest.raises(ValueError, match="must be"):
        compare(wine_frame, wine_frame, **kwargs)


def test_metric_names_are_unique_and_valid_for_mlflow(wine_frame: pd.DataFrame):
    current = wine_frame.assign(alcohol=wine_frame["alcohol"] + 2.0)

    metrics = compare(wine_frame, current).metrics()

    assert len(metrics) == 2 * len(COLUMNS) + 2
    # Stricter than MLflow's rule (letters, digits, _ - . / : and spaces).
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", name) for name in metrics)
    assert metrics["drift_detected"] == 1.0
    assert metrics["drift_columns"] == 1.0
    assert metrics["drift_psi_alcohol"] > DEFAULT_DRIFT_PSI
    assert metrics["drift_ks_fixed_acidity"] == 0.0
    assert "drift_psi_total_sulfur_dioxide" in metrics
    assert all(isinstance(value, float) and math.isfinite(value) for value in metrics.values())


def test_reasons_name_the_drifted_column_with_its_numbers(wine_frame: pd.DataFrame):
    current = wine_frame.assign(alcohol=wine_frame["alcohol"] + 2.0)

    (reason,) = compare(wine_frame, current).reasons()

    assert re.fullmatch(
        r"alcohol drifted from production's training data: PSI \d+\.\d\d \(threshold 0\.2\),"
        r" KS 0\.\d\d \(threshold 0\.1\), mean 10\.42 -> 12\.42",
        reason,
    ), reason


def test_reasons_without_drift_give_the_thresholds_and_the_largest_psi(wine_frame):
    report = compare(wine_frame, wine_frame.sample(frac=0.8, random_state=0))
    largest = max(report.columns, key=lambda column: column.psi)

    (reason,) = report.reasons()

    assert reason.startswith("no column drifted from production's training data")
    assert "below 0.2" in reason
    assert "below 0.1" in reason
    assert f"largest PSI {largest.psi:.3f}, on {largest.column}" in reason


def test_to_dict_is_strict_json(wine_frame: pd.DataFrame):
    current = wine_frame.assign(quality=wine_frame[TARGET].replace(5, 6))

    stored = json.loads(json.dumps(compare(wine_frame, current).to_dict(), allow_nan=False))

    assert stored["drift_detected"] is True
    assert stored["drifted_features"] == [TARGET]
    assert stored["baseline_rows"] == 1599
    assert [column["column"] for column in stored["columns"]] == list(COLUMNS)
    assert set(stored["columns"][0]) == {
        "column", "psi", "ks_statistic", "ks_pvalue", "baseline_mean", "current_mean", "drifted",
    }  # fmt: skip


def test_a_hand_built_report_without_columns_still_reads():
    report = DriftReport(
        columns=[], psi_threshold=0.2, ks_threshold=0.1, baseline_rows=0, current_rows=0
    )
    drifted = DriftReport(
        columns=[ColumnDrift("pH", 0.3, 0.05, 0.2, 3.3, 3.5, drifted=True)],
        psi_threshold=0.2, ks_threshold=0.1, baseline_rows=10, current_rows=10,
    )  # fmt: skip

    assert report.reasons() == [
        "no column drifted from production's training data: every PSI is below 0.2 and every"
        " KS statistic below 0.1"
    ]
    assert drifted.drifted_features == ["pH"]
    assert drifted.metrics()["drift_psi_pH"] == 0.3
