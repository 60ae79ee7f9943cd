"""The data gate: the Great Expectations suite every raw snapshot must pass before training.

This module owns the expectations (each with the risk it guards), ``FEATURE_BOUNDS`` with the
physical reason for every bound, and building and running the suite. The suite guards against
corrupt or mislabelled data (wrong columns, text in numeric columns, empty cells, sign flips, unit
slips, sentinels such as ``1e308`` or ``inf``), not against unusual wine: every range is a
physical or chemical limit, never the range seen in one file.

:func:`validate_frame` always returns a :class:`~wine_quality.validation.report.ValidationReport`,
including when expectations fail or could not be evaluated (GX records those as results with
``exception_info``; they count as failures). Putting the result into words is
:mod:`wine_quality.validation.report`'s job. The task decides what to do with the report,
normally ``report.raise_for_failure()``.

GX runs in an in-memory (ephemeral) context: nothing is written to disk and no usage statistics
are sent. Importing GX takes several seconds, so it is imported only when a frame is validated.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from wine_quality.core.config import COLUMNS, MIN_ROWS, TARGET
from wine_quality.core.runtime import preload
from wine_quality.validation.report import ValidationReport, build_report

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations import ExpectationSuite

SUITE_NAME = "wine_quality_raw"

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


def build_suite(min_rows: int = MIN_ROWS) -> ExpectationSuite:
    """The expectation suite for one raw snapshot of the wine data.

    Args:
        min_rows: Fewest rows worth training on; fewer means a truncated or partial extract.

    Returns:
        A new suite, not attached to any data context.
    """
    _quiet_gx_environment()
    preload("great_expectations")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    # Collected first and given to the suite whole: adding to a suite one by one asks GX's
    # current data context whether it is saved, so it needed a context that exists.
    expectations: list[Any] = []
    # Risk: a column is missing, added, renamed or moved. The model and the serving payload
    # address features by name and position, so the layout must match exactly. This is also
    # the only check that sees a change of case ("ph" for "pH"): GX resolves the column of every
    # per-column expectation case-insensitively, even on pandas.
    expectations.append(gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(COLUMNS)))
    # Risk: a truncated download or a partial extract that would train a worse model quietly.
    expectations.append(gxe.ExpectTableRowCountToBeBetween(min_value=min_rows, max_value=None))
    for column in COLUMNS:
        # Risk: text in a numeric column (a unit, a decimal comma) makes pandas read the whole
        # column as text, and training would fail or coerce it silently. ("n/a" and "NA" are
        # read as empty cells, which the next check catches.)
        expectations.append(
            gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=list(NUMERIC_DTYPES))
        )
        # Risk: empty cells; ElasticNet cannot fit on NaN and imputing would invent data.
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    for column, (low, high) in FEATURE_BOUNDS.items():
        # Risk: physically impossible values (sign flips, unit slips, sentinels, inf), which
        # pull a linear model far more than any real wine could. Bounds are documented above.
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)
        )
    # Risk: a score outside the 0-10 scale or a fractional one (5.5): the label is corrupt, or
    # the file holds averaged or rescaled scores instead of the panel's integer grade.
    expectations.append(
        gxe.ExpectColumnValuesToBeInSet(column=TARGET, value_set=list(QUALITY_SCORES))
    )
    # Risk: swapped SO2 columns or a mislabelled export. Free SO2 is a part of total SO2, so it
    # can never exceed it.
    expectations.append(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="total sulfur dioxide", column_B="free sulfur dioxide", or_equal=True
        )
    )
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)


def validate_frame(df: pd.DataFrame, *, min_rows: int = MIN_ROWS) -> ValidationReport:
    """Run the suite on ``df`` and report every failure; never raises for bad data.

    Args:
        df: The raw frame as parsed from the CSV (it is not modified).
        min_rows: Fewest rows accepted.

    Returns:
        The report; call ``raise_for_failure()`` on it to stop on bad data.
    """
    _quiet_gx_environment()
    preload("great_expectations")
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
    try:
        result = definition.run(batch_parameters={"dataframe": df}, result_format=_RESULT_FORMAT)
        raw = result.to_json_dict()
    finally:
        # GX keeps its last context in a module-level global, and the data source's engine
        # keeps the batch: without this the frame (1.5 GB at 16 M rows) outlives the call.
        context.validation_definitions.delete(SUITE_NAME)
        context.data_sources.delete("wine")
    return build_report(raw, suite.expectations, df)


def _quiet_gx_environment() -> None:
    # Opt out of usage statistics before GX is imported (the context config repeats it); an
    # explicit setting in the environment wins.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
