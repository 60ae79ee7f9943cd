"""The data gate: a Great Expectations suite that every raw snapshot must pass before training.

The suite guards against corrupt or mislabelled data (wrong columns, text in numeric columns,
empty cells, sign flips, unit slips, sentinels such as ``1e308`` or ``inf``), not against unusual
wine: every range is a physical or chemical limit, never the range seen in one file.

:func:`validate_frame` always returns a :class:`ValidationReport`, including when expectations
fail or could not be evaluated (GX records those as results with ``exception_info``; they count as
failures here). The task decides what to do with it, normally ``report.raise_for_failure()``.

GX runs in an in-memory (ephemeral) context: nothing is written to disk and no usage statistics
are sent. Importing GX takes several seconds, so it is imported only when a frame is validated.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from wine_quality.config import COLUMNS, MIN_ROWS, TARGET
from wine_quality.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations import ExpectationSuite

SUITE_NAME = "wine_quality_raw"
MAX_EXAMPLES = 5

# Inclusive (min, max) per feature. Every bound is what is physically or chemically possible for
# a wine, with headroom; none is fitted to a file, because a new vintage may legitimately fall
# outside the 2009 sample. Legal limits are not bounds either: certification labs also test wines
# that fail, and the reference file already holds reds above the EU volatile-acidity limit
# (1.2 g/L). What the bounds do catch: sign flips, sentinels (-999, 9999, 1e308, inf) and most
# unit slips (mg/L delivered as g/L multiplies a value by 1000).
FEATURE_BOUNDS: dict[str, tuple[float, float]] = {
    # g(tartaric acid)/L. Grape musts carry roughly 4-16 g/L of acid; nothing with twice that
    # much is fermented into wine.
    "fixed acidity": (0.0, 30.0),
    # g(acetic acid)/L. A wine with a few g/L is spoiled and vinegar starts around 40 g/L; 10 g/L
    # still admits the worst spoiled wine.
    "volatile acidity": (0.0, 10.0),
    # g/L. Grapes hold well under 1 g/L and the EU caps additions at 1 g/L; tenfold headroom for
    # wines made outside those rules.
    "citric acid": (0.0, 10.0),
    # g/L. Dry wines hold a few g/L and dessert wines a few hundred; at 400 g/L of sugar the
    # density alone would leave the 0.9-1.1 band below.
    "residual sugar": (0.0, 400.0),
    # g(sodium chloride)/L. Wines hold about 0.01-0.6 g/L, sea water 35 g/L; 5 g/L is already brine.
    "chlorides": (0.0, 5.0),
    # mg/L. Free SO2 is a part of total SO2, so it shares the total's bound (and is checked
    # against it row by row below).
    "free sulfur dioxide": (0.0, 1000.0),
    # mg/L. The highest EU limit for any wine category is 400 mg/L; above 1000 mg/L the wine is
    # undrinkable, so a larger value is a unit slip or a sentinel.
    "total sulfur dioxide": (0.0, 1000.0),
    # g/cm3. Water is 0.998 and ethanol 0.789, so even 25 % vol with no sugar stays near 0.97;
    # sugar adds about 0.04 per 100 g/L. A reading in kg/m3 (about 997) falls far outside.
    "density": (0.9, 1.1),
    # pH units: 0-14 by the definition of the scale for aqueous solutions (wine sits near 3-4).
    "pH": (0.0, 14.0),
    # g(potassium sulphate)/L: cannot exceed the solubility of potassium sulphate in water, about
    # 111 g/L at 20 degrees C.
    "sulphates": (0.0, 111.0),
    # % vol. Yeast stops near 15-16 %, fortified wines reach about 22 %; above 25 % it is a spirit.
    "alcohol": (0.0, 25.0),
}
# The target is a sensory score on the 0 (very bad) to 10 (excellent) scale of the data set's
# paper (Cortez et al., 2009): integers only.
QUALITY_SCORES: tuple[int, ...] = tuple(range(11))
# The numpy dtypes the model can consume as they are. Anything else (text, object, bool, dates)
# means the source changed format or a cell holds something other than a number.
NUMERIC_DTYPES: tuple[str, ...] = (
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
)
_RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


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
class ValidationReport:
    """The outcome of running the suite on one frame.

    Attributes:
        success: True only if every expectation was evaluated and passed.
        evaluated: Number of expectations in the suite.
        failed: The failed expectations, in suite order (table checks first).
        result: The full GX result as a JSON-safe dict (non-finite floats as strings).
    """

    success: bool
    evaluated: int
    failed: list[FailedExpectation]
    result: dict[str, Any]

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


def build_suite(min_rows: int = MIN_ROWS) -> ExpectationSuite:
    """The expectation suite for one raw snapshot of the wine data.

    Args:
        min_rows: Fewest rows worth training on; fewer means a truncated or partial extract.

    Returns:
        A new suite, not attached to any data context.
    """
    _quiet_gx_environment()
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=SUITE_NAME)
    # Risk: a column is missing, added, renamed or moved. The model and the serving payload
    # address features by name and position, so the layout must match exactly. This is also
    # the only check that sees a change of case ("ph" for "pH"): GX resolves the column of every
    # per-column expectation case-insensitively, even on pandas.
    suite.add_expectation(gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(COLUMNS)))
    # Risk: a truncated download or a partial extract that would train a worse model quietly.
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=min_rows, max_value=None))
    for column in COLUMNS:
        # Risk: text in a numeric column (a unit, a decimal comma) makes pandas read the whole
        # column as text, and training would fail or coerce it silently. ("n/a" and "NA" are
        # read as empty cells, which the next check catches.)
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=list(NUMERIC_DTYPES))
        )
        # Risk: empty cells; ElasticNet cannot fit on NaN and imputing would invent data.
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    for column, (low, high) in FEATURE_BOUNDS.items():
        # Risk: physically impossible values (sign flips, unit slips, sentinels, inf), which
        # pull a linear model far more than any real wine could. Bounds are documented above.
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)
        )
    # Risk: a score outside the 0-10 scale or a fractional one (5.5): the label is corrupt, or
    # the file holds averaged or rescaled scores instead of the panel's integer grade.
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeInSet(column=TARGET, value_set=list(QUALITY_SCORES))
    )
    # Risk: swapped SO2 columns or a mislabelled export. Free SO2 is a part of total SO2, so it
    # can never exceed it.
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="total sulfur dioxide", column_B="free sulfur dioxide", or_equal=True
        )
    )
    return suite


def validate_frame(df: pd.DataFrame, *, min_rows: int = MIN_ROWS) -> ValidationReport:
    """Run the suite on ``df`` and report every failure; never raises for bad data.

    Args:
        df: The raw frame as parsed from the CSV (it is not modified).
        min_rows: Fewest rows accepted.

    Returns:
        The report; call ``raise_for_failure()`` on it to stop on bad data.
    """
    _quiet_gx_environment()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # In-memory stores and no docs site, so validating never writes a file; no usage statistics
    # and no progress bars, so the task log only shows what the pipeline logs.
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    suite = context.suites.add(build_suite(min_rows))
    batch_definition = (
        context.data_sources.add_pandas("wine")
        .add_dataframe_asset("raw")
        .add_batch_definition_whole_dataframe("whole")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=SUITE_NAME, data=batch_definition, suite=suite)
    )
    result = definition.run(batch_parameters={"dataframe": df}, result_format=_RESULT_FORMAT)
    raw = result.to_json_dict()

    # Results come back in GX's evaluation order; report them in suite order (table checks
    # first), and count an expectation GX returned no result for as failed, never as passed.
    by_id = {item["expectation_config"].get("id"): item for item in raw["results"]}
    failed: list[FailedExpectation] = []
    for expectation in suite.expectations:
        item = by_id.get(expectation.id)
        if item is None:
            failed.append(
                FailedExpectation(
                    expectation=expectation.expectation_type,
                    column=getattr(expectation, "column", None),
                    message="GX returned no result for this expectation",
                )
            )
        elif not item.get("success") or _exception_message(item) is not None:
            failed.append(_describe(item, df))
    return ValidationReport(
        success=bool(raw.get("success")) and not failed,
        evaluated=len(suite.expectations),
        failed=failed,
        result=_json_safe(raw),
    )


def _quiet_gx_environment() -> None:
    # Opt out of usage statistics before GX is imported (the context config repeats it); an
    # explicit setting in the environment wins.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


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
