"""The expectation suite against the real data and against deliberately broken copies of it.

Every broken copy is built in memory from the real frame, must fail, and must fail with a message
that names the problem (expectation, column, offending values), since that message is what a
person reads in the Airflow log.
"""

from __future__ import annotations

import gc
import json
import re
import tracemalloc
import weakref
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from wine_quality.core.config import COLUMNS, FEATURES, MIN_ROWS
from wine_quality.core.errors import DataValidationError
from wine_quality.data.parse import parse_csv
from wine_quality.validation import (
    FEATURE_BOUNDS,
    MAX_EXAMPLES,
    ValidationReport,
    build_suite,
    validate_frame,
)

Breaker = Callable[[pd.DataFrame], pd.DataFrame]


@pytest.fixture(scope="module")
def real_report(wine_frame: pd.DataFrame) -> ValidationReport:
    return validate_frame(wine_frame)


@pytest.fixture(scope="module")
def suite_size() -> int:
    return len(build_suite().expectations)


def failure_message(report: ValidationReport) -> str:
    with pytest.raises(DataValidationError) as raised:
        report.raise_for_failure()
    return str(raised.value)


def test_real_file_passes_every_expectation(real_report: ValidationReport, suite_size: int):
    assert real_report.failed == [], [failure.describe() for failure in real_report.failed]
    assert real_report.success
    assert real_report.evaluated == suite_size
    real_report.raise_for_failure()


def test_every_feature_has_a_documented_physical_range():
    assert set(FEATURE_BOUNDS) == set(FEATURES)
    assert all(low < high for low, high in FEATURE_BOUNDS.values())


# Breakers: each returns a broken copy; the session-scoped real frame is never modified.


def _drop(column: str) -> Breaker:
    return lambda frame: frame.drop(columns=[column])


def _set(column: str, rows: list[int], value: object, *, as_type: str | None = None) -> Breaker:
    def breaker(frame: pd.DataFrame) -> pd.DataFrame:
        broken = frame.copy()
        if as_type is not None:
            broken[column] = broken[column].astype(as_type)
        broken.loc[rows, column] = value
        return broken

    return breaker


def _text_in_csv(column: str, row: int, text: str) -> Breaker:
    """Write ``text`` into a cell and re-parse, so the frame is what ingest would hand over."""

    def breaker(frame: pd.DataFrame) -> pd.DataFrame:
        broken = frame.copy()
        broken[column] = broken[column].astype(str)
        broken.loc[row, column] = text
        return parse_csv(broken.to_csv(sep=";", index=False).encode())

    return breaker


def _swap(first: str, second: str) -> Breaker:
    def breaker(frame: pd.DataFrame) -> pd.DataFrame:
        order = list(frame.columns)
        i, j = order.index(first), order.index(second)
        order[i], order[j] = order[j], order[i]
        return frame[order]

    return breaker


def _free_above_total(frame: pd.DataFrame) -> pd.DataFrame:
    broken = frame.copy()
    broken.loc[10, "free sulfur dioxide"] = broken.loc[10, "total sulfur dioxide"] + 5
    return broken


def _density_in_kg_per_m3(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(density=frame["density"] * 1000)


def _duplicate_header(frame: pd.DataFrame) -> pd.DataFrame:
    broken = frame.copy()
    broken.columns = [*COLUMNS[:-1], "pH"]
    return broken


BROKEN = [
    pytest.param(
        _drop("pH"),
        ["expect_table_columns_to_match_ordered_list: missing ['pH']", "column 'pH' is missing"],
        id="missing-column",
    ),
    pytest.param(
        lambda frame: frame.assign(colour="red"),
        ["expect_table_columns_to_match_ordered_list: unexpected ['colour']"],
        id="extra-column",
    ),
    pytest.param(
        lambda frame: frame.rename(columns={"alcohol": "alcohol_pct"}),
        ["missing ['alcohol'], unexpected ['alcohol_pct']"],
        id="renamed-column",
    ),
    pytest.param(
        # GX resolves per-column expectations case-insensitively, so only the column-list check
        # sees this rename; the type check cannot find 'pH' and says so.
        lambda frame: frame.rename(columns={"pH": "PH"}),
        ["missing ['pH'], unexpected ['PH']", "column 'pH' is missing"],
        id="column-case-changed",
    ),
    pytest.param(
        _swap("density", "pH"),
        [
            "columns out of order (2 positions differ)",
            "position 8 holds 'pH', expected 'density'",
        ],
        id="reordered-columns",
    ),
    pytest.param(
        _duplicate_header,
        ["missing ['quality'], duplicated ['pH']"],
        id="duplicated-column",
    ),
    pytest.param(
        _text_in_csv("pH", 4, "3,20"),
        [
            "expect_column_values_to_be_in_type_list on 'pH': dtype str is not numeric",
            "non-numeric values ['3,20']",
            "expect_column_values_to_be_between on 'pH': could not be evaluated",
        ],
        id="decimal-comma-text",
    ),
    pytest.param(
        _set("alcohol", [5], "12 %", as_type="object"),
        [
            "expect_column_values_to_be_in_type_list on 'alcohol': dtype object is not numeric",
            "non-numeric values ['12 %']",
        ],
        id="unit-text-in-object-column",
    ),
    pytest.param(
        _set("alcohol", [3, 7], np.nan),
        [
            "expect_column_values_to_not_be_null on 'alcohol':"
            " 2 of 1599 cells are empty, e.g. rows [3, 7]"
        ],
        id="nan-cells",
    ),
    pytest.param(
        _set("chlorides", [2], -0.05),
        [
            "expect_column_values_to_be_between on 'chlorides': 1 of 1599 values outside"
            " 0 <= x <= 5: unexpected values [-0.05]"
        ],
        id="negative-concentration",
    ),
    pytest.param(
        _set("pH", [0, 1], [15.2, 14.5]),
        ["expect_column_values_to_be_between on 'pH'", "0 <= x <= 14", "[15.2, 14.5]"],
        id="ph-above-14",
    ),
    pytest.param(
        _set("quality", [0], 11),
        [
            "expect_column_values_to_be_in_set on 'quality': 1 of 1599 values are not an integer"
            " in 0..10: unexpected values [11]"
        ],
        id="quality-11",
    ),
    pytest.param(
        _set("quality", [0], 5.5, as_type="float64"),
        ["expect_column_values_to_be_in_set on 'quality'", "unexpected values [5.5]"],
        id="quality-fractional",
    ),
    pytest.param(
        _set("density", [9], np.inf),
        ["expect_column_values_to_be_between on 'density'", "0.9 <= x <= 1.1", "[inf]"],
        id="inf",
    ),
    pytest.param(
        _set("alcohol", [9], -np.inf),
        ["expect_column_values_to_be_between on 'alcohol'", "[-inf]"],
        id="minus-inf",
    ),
    pytest.param(
        _set("total sulfur dioxide", [9], 1e308),
        ["expect_column_values_to_be_between on 'total sulfur dioxide'", "[1e+308]"],
        id="1e308",
    ),
    pytest.param(
        _density_in_kg_per_m3,
        ["expect_column_values_to_be_between on 'density': 1599 of 1599 values outside"],
        id="unit-slip",
    ),
    pytest.param(
        lambda frame: frame.head(100),
        [f"expect_table_row_count_to_be_between: 100 rows, at least {MIN_ROWS} needed"],
        id="too-few-rows",
    ),
    pytest.param(
        _free_above_total,
        [
            "expect_column_pair_values_a_to_be_greater_than_b on 'total sulfur dioxide'",
            "1 of 1599 rows have 'free sulfur dioxide' > 'total sulfur dioxide'",
        ],
        id="free-so2-above-total",
    ),
]


@pytest.mark.parametrize(("breaker", "fragments"), BROKEN)
def test_broken_copy_fails_naming_the_problem(
    wine_frame: pd.DataFrame, suite_size: int, breaker: Breaker, fragments: list[str]
):
    report = validate_frame(breaker(wine_frame))

    assert not report.success
    assert report.failed
    message = failure_message(report)
    assert re.match(rf"{len(report.failed)} of {suite_size} expectations failed: ", message)
    for fragment in fragments:
        assert fragment in message


def test_failures_come_in_suite_order_with_table_checks_first(wine_frame: pd.DataFrame):
    report = validate_frame(_drop("pH")(wine_frame))

    kinds = [failure.expectation for failure in report.failed]
    assert kinds == [
        "expect_table_columns_to_match_ordered_list",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
    ]
    assert [failure.column for failure in report.failed] == [None, "pH", "pH", "pH"]


def test_examples_are_capped(wine_frame: pd.DataFrame):
    report = validate_frame(wine_frame.assign(pH=wine_frame["pH"] + 20))

    (failure,) = report.failed
    assert failure.column == "pH"
    assert len(failure.examples) == MAX_EXAMPLES
    assert "1599 of 1599 values outside 0 <= x <= 14" in failure.message


def test_min_rows_is_a_parameter(wine_frame: pd.DataFrame):
    assert validate_frame(wine_frame.head(100), min_rows=100).success
    report = validate_frame(wine_frame, min_rows=2000)
    assert "1599 rows, at least 2000 needed" in failure_message(report)


def test_validation_leaves_the_frame_untouched(wine_frame: pd.DataFrame):
    before = wine_frame.copy()
    validate_frame(wine_frame)
    pd.testing.assert_frame_equal(wine_frame, before)


def test_validation_reads_the_frame_in_place(wine_frame: pd.DataFrame):
    # At 16 M rows a copy of the frame is 1.5 GB: the suite must work on the frame as it is.
    big = pd.concat([wine_frame] * 250, ignore_index=True)
    validate_frame(big.head(MIN_ROWS))  # GX's imports and first context, outside the count
    tracemalloc.start()
    try:
        report = validate_frame(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.success
    frame_bytes = big.memory_usage(index=False).sum()
    assert peak < frame_bytes, f"validation allocated {peak / frame_bytes:.0%} of the frame"


def test_validation_keeps_no_reference_to_the_frame(wine_frame: pd.DataFrame):
    # A caller that validates and then trains in one process must get the memory back.
    frame = wine_frame.copy()
    alive = weakref.ref(frame)
    assert validate_frame(frame).success
    del frame
    gc.collect()
    assert alive() is None


def test_to_json_is_strict_json_holding_the_gx_result(
    real_report: ValidationReport, wine_frame: pd.DataFrame
):
    stored = json.loads(real_report.to_json())
    assert stored["success"] is True
    assert stored["result"] == real_report.result
    assert stored["result"]["success"] is True
    assert stored["result"]["statistics"]["evaluated_expectations"] == real_report.evaluated
    assert len(stored["result"]["results"]) == real_report.evaluated
    # The DataFrame itself is never serialised, only a placeholder for it.
    assert "dataframe" in stored["result"]["meta"]["batch_parameters"]

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    broken = validate_frame(_set("density", [9], np.inf)(wine_frame))
    stored = json.loads(broken.to_json(), parse_constant=refuse)
    assert stored["success"] is False
    assert stored["failed"][0]["examples"] == ["inf"]


def test_validation_writes_nothing_and_prints_nothing(
    wine_frame: pd.DataFrame, tmp_path, monkeypatch, capfd
):
    monkeypatch.chdir(tmp_path)
    validate_frame(wine_frame.head(100))

    assert list(tmp_path.iterdir()) == []
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""
