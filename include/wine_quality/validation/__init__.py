"""The data gate: the expectation suite (``suite``), what its result says (``report``), and
that as a page to read (``html``).

``from wine_quality.validation import validate_frame`` is the way in; importing the package loads
neither Great Expectations nor pandas.
"""

from __future__ import annotations

from wine_quality.validation.html import render_html
from wine_quality.validation.report import (
    MAX_EXAMPLES,
    CheckedExpectation,
    FailedExpectation,
    ValidationReport,
    build_report,
)
from wine_quality.validation.suite import (
    FEATURE_BOUNDS,
    NUMERIC_DTYPES,
    QUALITY_SCORES,
    SUITE_NAME,
    build_suite,
    validate_frame,
)

__all__ = [
    "FEATURE_BOUNDS",
    "MAX_EXAMPLES",
    "NUMERIC_DTYPES",
    "QUALITY_SCORES",
    "SUITE_NAME",
    "CheckedExpectation",
    "FailedExpectation",
    "ValidationReport",
    "build_report",
    "build_suite",
    "render_html",
    "validate_frame",
]
