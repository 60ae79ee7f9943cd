"""The validation result as a page: every expectation, failures first, nothing unescaped."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.data.corpus import CORPUS
from wine_quality.core.config import COLUMNS
from wine_quality.core.errors import DataValidationError
from wine_quality.data.parse import parse_csv
from wine_quality.validation import (
    CheckedExpectation,
    FailedExpectation,
    ValidationReport,
    build_report,
    build_suite,
    render_html,
    validate_frame,
)

HOSTILE = "<script>alert(1)</script>"
SHA = "4a402cf0" * 8


def rows_of(page: str) -> list[str]:
    """The result table's rows, in page order."""
    return re.findall(r'<tr class="(?:passed|failed)">.*?</tr>', page)


def assert_safe(page: str) -> None:
    """No tag the page did not write itself, and nothing fetched from elsewhere."""
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert not re.search(r"\b(src|href)=", page)
    assert "http" not in page


def hand_built() -> ValidationReport:
    """A report with one pass and two failures whose texts are hostile."""
    failure = FailedExpectation(
        "expect_column_values_to_be_between", "pH", f"1 of 3 values outside: {HOSTILE}", [HOSTILE]
    )
    missing = FailedExpectation(
        "expect_table_columns_to_match_ordered_list", None, "unexpected ['<b>x</b>']", ["<b>x</b>"]
    )
    checks = [
        CheckedExpectation("expect_table_row_count_to_be_between", None, {"min_value": 3}, 3),
        CheckedExpectation(
            "expect_table_columns_to_match_ordered_list", None,
            {"column_list": ["pH", "<b>x</b>"]}, ["pH", "<b>x</b>"], failure=missing,
        ),
        CheckedExpectation(
            "expect_column_values_to_be_between", "pH",
            {"column": "pH", "min_value": 0.0, "max_value": 14.0}, None, 1, failure=failure,
        ),
    ]  # fmt: skip
    return ValidationReport(
        success=False, evaluated=3, failed=[missing, failure], result={}, checks=checks
    )


def test_hand_built_page_puts_failures_first_and_escapes_everything():
    page = render_html(hand_built(), data_sha256=SHA, rows=3)

    assert_safe(page)
    assert page.startswith("<!DOCTYPE html>")
    assert '<span class="verdict failed">FAILED</span>' in page
    assert "2 of 3 expectations failed." in page
    assert f"<code>{SHA}</code>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    rows = rows_of(page)
    assert [row.split("<td>")[1].split("</td>")[0] for row in rows] == ["2", "3", "1"]
    assert [row.startswith('<tr class="failed">') for row in rows] == [True, True, False]
    assert "min_value=0, max_value=14" in rows[1]
    assert "unexpected: 1 of 3 rows" in rows[1]
    assert "observed: 3" in rows[2]


def test_a_report_without_checks_still_renders():
    report = ValidationReport(success=True, evaluated=0, failed=[], result={})

    page = render_html(report, data_sha256=SHA, rows=0)

    assert "This report holds no per-expectation results." in page
    assert '<span class="verdict passed">PASSED</span>' in page


@pytest.fixture(scope="module")
def passing(wine_frame: pd.DataFrame) -> tuple[ValidationReport, str]:
    report = validate_frame(wine_frame)
    return report, render_html(report, data_sha256=SHA, rows=len(wine_frame))


@pytest.fixture(scope="module")
def failing(wine_csv: Path) -> tuple[ValidationReport, str]:
    # pH above 14 in one row (from the broken-input corpus), and a column renamed to markup.
    mutate = next(case.mutate for case in CORPUS if case.kind == "ph-above-14")
    frame = parse_csv(mutate(wine_csv.read_bytes())).rename(columns={"alcohol": HOSTILE})
    report = validate_frame(frame)
    return report, render_html(report, data_sha256=SHA, rows=len(frame))


def test_passing_page_lists_every_expectation(passing):
    report, page = passing

    assert report.success
    assert_safe(page)
    assert '<span class="verdict passed">PASSED</span>' in page
    assert f"All {report.evaluated} expectations passed." in page
    rows = rows_of(page)
    assert len(rows) == report.evaluated == len(build_suite().expectations)
    assert all(row.startswith('<tr class="passed">') for row in rows)
    for check, row in zip(report.checks, rows, strict=True):
        assert f"<code>{check.expectation}</code>" in row
    for column in COLUMNS:
        assert f"<td>{column}</td>" in page
    assert "observed: 1599" in page  # the row count
    assert "unexpected: 0 of 1,599 rows" in page


def test_failing_page_names_the_failed_expectations_first_and_escapes_the_data(failing):
    report, page = failing

    assert not report.success
    assert_safe(page)
    assert '<span class="verdict failed">FAILED</span>' in page
    rows = rows_of(page)
    assert len(rows) == report.evaluated
    failed_rows = [row for row in rows if row.startswith('<tr class="failed">')]
    assert rows[: len(failed_rows)] == failed_rows
    assert len(failed_rows) == len(report.failed)
    ph = next(row for row in failed_rows if "<td>pH</td>" in row)
    assert "<code>expect_column_values_to_be_between</code>" in ph
    assert "1 of 1599 values outside 0 &lt;= x &lt;= 14: unexpected values [15.5]" in ph
    assert "examples: [15.5]" in ph
    columns = next(row for row in failed_rows if "match_ordered_list" in row)
    assert "unexpected [&#x27;&lt;script&gt;alert(1)&lt;/script&gt;&#x27;]" in columns


def test_build_report_keeps_every_expectation_in_suite_order(failing):
    report, _ = failing
    suite = build_suite()

    assert [check.expectation for check in report.checks] == [
        expectation.expectation_type for expectation in suite.expectations
    ]
    assert [check.failure for check in report.checks if not check.success] == report.failed
    assert all("batch_id" not in check.kwargs for check in report.checks)
    row_count = report.checks[1]
    assert (row_count.observed, row_count.kwargs) == (1599, {"min_value": 500})


def test_an_expectation_without_a_result_is_a_failed_check(wine_frame: pd.DataFrame):
    suite = build_suite()

    report = build_report({"success": True, "results": []}, suite.expectations, wine_frame)

    assert not report.success
    assert len(report.checks) == len(suite.expectations)
    first = report.checks[0]
    assert not first.success
    assert first.failure.message == "GX returned no result for this expectation"
    assert first.kwargs == {"column_list": list(COLUMNS)}
    page = render_html(report, data_sha256=SHA, rows=len(wine_frame))
    assert page.count("GX returned no result for this expectation") == len(suite.expectations)


@pytest.mark.slow
def test_the_validate_step_logs_the_page_next_to_the_json(wine_csv: Path, tmp_path, monkeypatch):
    from wine_quality.core.tracking import client
    from wine_quality.data.ingest import ingest
    from wine_quality.validation.run import validate_snapshot

    # A throwaway store: the runs' artifacts go to ./mlruns under tmp_path.
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    good = ingest(str(wine_csv), str(tmp_path / "staging"), "good")
    broken = tmp_path / "broken.csv"
    mutate = next(case.mutate for case in CORPUS if case.kind == "ph-above-14")
    broken.write_bytes(mutate(wine_csv.read_bytes()))
    bad = ingest(str(broken), str(tmp_path / "staging"), "bad")
    settings = {"tracking_uri": uri, "experiment_name": "validate", "min_rows": 500}

    passed = validate_snapshot(good, airflow_run_id="good", **settings)
    with pytest.raises(DataValidationError, match="pH"):
        validate_snapshot(bad, airflow_run_id="bad", **settings)

    mlflow = client(uri)
    (failed_run,) = mlflow.search_runs(
        [mlflow.get_experiment_by_name("validate").experiment_id],
        filter_string="tags.validation = 'failed'",
    )
    for run_id, verdict in (
        (passed.validation_run_id, "PASSED"),
        (failed_run.info.run_id, "FAILED"),
    ):
        names = [item.path for item in mlflow.list_artifacts(run_id, "validation")]
        assert names == ["validation/validation_result.html", "validation/validation_result.json"]
        page = Path(mlflow.download_artifacts(run_id, "validation/validation_result.html"))
        assert f">{verdict}</span>" in page.read_text(encoding="utf-8")
