"""What a suite run found, in words: GX's result turned into a report a person can act on.

:func:`build_report` reads GX's result for each expectation of the suite and states every failure
with counts, bounds and a few offending values (:class:`FailedExpectation`); an expectation that
could not be evaluated, or got no result, counts as failed. :class:`ValidationReport` stops the
pipeline on failure with one message naming every failed check, keeps the full result as strict
JSON for MLflow, and lists every expectation as evaluated (:class:`CheckedExpectation`) for the
HTML page of :mod:`wine_quality.validation.html`. The expectations themselves live in
:mod:`wine_quality.validation.suite`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from wine_quality.core.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.expectations import Expectation

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation that failed or could not be evaluated, in words a person can act on.

    Attributes:
        expectation: GX expectation type, e.g. ``expect_column_values_to_be_between``.
        column: The column it checks (``column_A`` for a column pair), None for table checks.
        message: What is wrong, with counts and bounds.
        examples: Up to five offending values (row labels for empty cells, whose value says
            nothing; column names for the column-list check).
    """

    expectation: str
    column: str | None
    message: str
    examples: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        """One line: expectation, column and what is wrong."""
        where = f" on {self.column!r}" if self.column is not None else ""
        return f"{self.expectation}{where}: {self.message}"


@dataclass(frozen=True)
class CheckedExpectation:
    """One expectation of the suite as evaluated, passed or not.

    Attributes:
        expectation: GX expectation type.
        column: The column it checks (``column_A`` for a column pair), None for table checks.
        kwargs: Its arguments as GX recorded them, JSON-safe, without GX's batch id.
        observed: GX's observed value, for the expectations that report one.
        unexpected_count: Values or rows that broke it, for the expectations that count them.
        failure: What is wrong, None when it passed.
    """

    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    observed: Any = None
    unexpected_count: int | None = None
    failure: FailedExpectation | None = None

    @property
    def success(self) -> bool:
        """Whether it was evaluated and passed."""
        return self.failure is None


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of running the suite on one frame.

    Attributes:
        success: True only if every expectation was evaluated and passed.
        evaluated: Number of expectations in the suite.
        failed: The failed expectations, in suite order (table checks first).
        result: The full GX result as a JSON-safe dict (non-finite floats as strings).
        checks: Every expectation of the suite, passed or failed, in suite order.
    """

    success: bool
    evaluated: int
    failed: list[FailedExpectation]
    result: dict[str, Any]
    checks: list[CheckedExpectation] = field(default_factory=list)

    def raise_for_failure(self) -> None:
        """Stop the pipeline on bad data, naming every failed check.

        Raises:
            DataValidationError: At least one expectation failed.
        """
        if self.success:
            return
        details = "; ".join(failure.describe() for failure in self.failed) or (
            "GX marked the suite failed without naming an expectation; see the full result"
        )
        raise DataValidationError(
            f"{len(self.failed)} of {self.evaluated} expectations failed: {details}"
        )

    def to_json(self) -> str:
        """The summary and the full GX result as strict JSON, to keep as an artifact."""
        payload = {
            "success": self.success,
            "evaluated": self.evaluated,
            "failed": [asdict(failure) for failure in self.failed],
            "result": self.result,
        }
        return json.dumps(_json_safe(payload), indent=2, allow_nan=False, default=str)


def build_report(
    raw: dict[str, Any], expectations: Sequence[Expectation], df: pd.DataFrame
) -> ValidationReport:
    """Turn one suite run's result into a report.

    Args:
        raw: The GX result as a JSON dict (``ExpectationSuiteValidationResult.to_json_dict()``).
        expectations: The suite's expectations, in suite order.
        df: The frame that was validated, to quote offending cells from.

    Returns:
        The report, failed expectations in suite order.
    """
    # Results come back in GX's evaluation order; report them in suite order (table checks
    # first), and count an expectation GX returned no result for as failed, never as passed.
    by_id = {item["expectation_config"].get("id"): item for item in raw["results"]}
    failed: list[FailedExpectation] = []
    checks: list[CheckedExpectation] = []
    for expectation in expectations:
        item = by_id.get(expectation.id)
        if item is None:
            failure = FailedExpectation(
                expectation=expectation.expectation_type,
                column=getattr(expectation, "column", None),
                message="GX returned no result for this expectation",
            )
            kwargs = dict(expectation.configuration.kwargs)
            checks.append(
                CheckedExpectation(
                    failure.expectation, failure.column, _arguments(kwargs), failure=failure
                )
            )
            failed.append(failure)
            continue
        failure = None
        if not item.get("success") or _exception_message(item) is not None:
            failure = _describe(item, df)
            failed.append(failure)
        checks.append(_checked(item, failure))
    return ValidationReport(
        success=bool(raw.get("success")) and not failed,
        evaluated=len(expectations),
        failed=failed,
        result=_json_safe(raw),
        checks=checks,
    )


def _checked(item: dict[str, Any], failure: FailedExpectation | None) -> CheckedExpectation:
    """One GX result as a :class:`CheckedExpectation`."""
    config = item["expectation_config"]
    kwargs: dict[str, Any] = config.get("kwargs", {})
    result: dict[str, Any] = item.get("result") or {}
    count = result.get("unexpected_count")
    return CheckedExpectation(
        expectation=config["type"],
        column=kwargs.get("column", kwargs.get("column_A")),
        kwargs=_arguments(kwargs),
        observed=_json_safe(result.get("observed_value")),
        unexpected_count=int(count) if count is not None else None,
        failure=failure,
    )


def _arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """An expectation's arguments without GX's batch id, which says nothing about the check."""
    return _json_safe({key: value for key, value in kwargs.items() if key != "batch_id"})


def _exception_message(item: dict[str, Any]) -> str | None:
    """The message of an exception GX caught while evaluating, or None if it ran cleanly."""
    info = item.get("exception_info") or {}
    # Two shapes: one flat record, or one record per metric that could not be computed.
    records = [info] if "raised_exception" in info else list(info.values())
    for record in records:
        if not isinstance(record, dict):
            continue
        if record.get("raised_exception") or record.get("exception_message"):
            return str(record.get("exception_message") or "unknown error")
    return None


def _describe(item: dict[str, Any], df: pd.DataFrame) -> FailedExpectation:
    """Turn one failed GX result into a short statement of what is wrong."""
    config = item["expectation_config"]
    kind: str = config["type"]
    kwargs: dict[str, Any] = config.get("kwargs", {})
    column = kwargs.get("column", kwargs.get("column_A"))
    result: dict[str, Any] = item.get("result") or {}

    error = _exception_message(item)
    if error is not None:
        absent = [
            name
            for name in (kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B"))
            if name is not None and name not in df.columns
        ]
        if absent:
            message = f"column {', '.join(map(repr, absent))} is missing, so it was not checked"
        else:
            message = f"could not be evaluated: {error}"
        return FailedExpectation(kind, column, message)

    examples = _plain(list(result.get("partial_unexpected_list") or [])[:MAX_EXAMPLES])
    count = result.get("unexpected_count")
    total = result.get("element_count")
    share = f"{count} of {total}" if count is not None else "some"

    if kind == "expect_table_columns_to_match_ordered_list":
        return _describe_columns(kind, list(kwargs["column_list"]), list(result["observed_value"]))
    if kind == "expect_table_row_count_to_be_between":
        return FailedExpectation(
            kind,
            None,
            f"{result.get('observed_value')} rows, at least {kwargs.get('min_value')} needed",
        )
    if kind == "expect_column_values_to_be_in_type_list":
        bad = _non_numeric_values(df, column)
        dtype = result.get("observed_value") or _dtype_name(df, column)
        message = f"dtype {dtype} is not numeric"
        if bad:
            message += f"; non-numeric values {_show(bad)}"
        return FailedExpectation(kind, column, message, bad)
    if kind == "expect_column_values_to_not_be_null":
        rows = _plain(list(result.get("partial_unexpected_index_list") or [])[:MAX_EXAMPLES])
        return FailedExpectation(kind, column, f"{share} cells are empty, e.g. rows {rows}", rows)
    if kind == "expect_column_values_to_be_between":
        bounds = f"{_number(kwargs.get('min_value'))} <= x <= {_number(kwargs.get('max_value'))}"
        message = f"{share} values outside {bounds}: unexpected values {_show(examples)}"
        return FailedExpectation(kind, column, message, examples)
    if kind == "expect_column_values_to_be_in_set":
        allowed = kwargs.get("value_set") or []
        wanted = (
            f"an integer in {min(allowed)}..{max(allowed)}"
            if allowed and list(allowed) == list(range(min(allowed), max(allowed) + 1))
            else f"one of {allowed}"
        )
        message = f"{share} values are not {wanted}: unexpected values {_show(examples)}"
        return FailedExpectation(kind, column, message, examples)
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = kwargs["column_A"], kwargs["column_B"]
        message = f"{share} rows have {b!r} > {a!r}: unexpected ({a}, {b}) pairs {_show(examples)}"
        return FailedExpectation(kind, column, message, examples)
    # Any expectation added later without its own wording still says what GX saw.
    observed = result.get("observed_value")
    message = f"observed {observed!r}" if observed is not None else f"{share} unexpected values"
    if examples:
        message += f", e.g. {_show(examples)}"
    return FailedExpectation(kind, column, message, examples)


def _describe_columns(kind: str, expected: list[str], observed: list[str]) -> FailedExpectation:
    """Name the missing, unexpected, duplicated or moved columns."""
    missing = [name for name in expected if name not in observed]
    extra = [name for name in observed if name not in expected]
    duplicated = sorted({name for name in observed if observed.count(name) > 1})
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unexpected {extra}")
    if duplicated:
        parts.append(f"duplicated {duplicated}")
    if not parts:
        moved = [
            f"position {index} holds {found!r}, expected {wanted!r}"
            for index, (wanted, found) in enumerate(zip(expected, observed, strict=False), start=1)
            if wanted != found
        ]
        shown = "; ".join(moved[:3]) + ("; ..." if len(moved) > 3 else "")
        parts.append(f"columns out of order ({len(moved)} positions differ): {shown}")
    names = (missing + extra + duplicated)[:MAX_EXAMPLES]
    return FailedExpectation(kind, None, ", ".join(parts), names)


def _non_numeric_values(df: pd.DataFrame, column: str | None) -> list[Any]:
    """Up to five distinct cells of ``column`` that do not parse as numbers."""
    import pandas as pd

    if column is None or list(df.columns).count(column) != 1:
        return []
    values = df[column]
    parsed = pd.to_numeric(values, errors="coerce")
    offending = values[parsed.isna() & values.notna()]
    return _plain(list(dict.fromkeys(offending.tolist()))[:MAX_EXAMPLES])


def _dtype_name(df: pd.DataFrame, column: str | None) -> str:
    """The pandas dtype of ``column``, or "unknown" if it is absent or duplicated."""
    if column is None or list(df.columns).count(column) != 1:
        return "unknown"
    return str(df[column].dtype)


def _number(value: Any) -> str:
    """A bound as people write it (0 rather than 0.0)."""
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _show(values: list[Any]) -> str:
    """A compact rendering of example values (long strings cut short)."""
    shown = [
        f"{value[:37]}..." if isinstance(value, str) and len(value) > 40 else value
        for value in values
    ]
    return repr(shown)


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python ones (GX leaves some inside column-pair tuples)."""
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    return value


def _json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python ones and non-finite floats as strings."""
    value = _plain(value) if not isinstance(value, list | tuple) else value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
