"""The fast path: the common JSON requests scored on the fitted pipeline, without pandas.

MLflow's path turns one JSON row into a DataFrame twice (its parser, then the wrapper's
``to_feature_frame``) and enforces the schema in between: about 10 ms for one row, where the
fitted pipeline itself takes 0.5 ms on a numpy array. This module answers the requests clients
actually send: ``application/json`` holding exactly one of ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs``, with the 11 feature columns (any order) and
nothing else, int or float values only, all finite, 1 to ``max_rows`` rows. For those it builds
the float64 array the wrapper would build, in the same memory layout (column-major, as a
DataFrame's), and calls the same fitted pipeline, so the predictions are bit for bit the wrapper's;
the response body is encoded as MLflow encodes it.

Everything else returns None and takes MLflow's own path: other content types, other keys or
columns, nulls, text, non-finite numbers, malformed JSON, too many rows. The protocol and every
refusal stay MLflow's (and the server's limits), except one: a boolean where a number belongs is
refused here, as the wrapper refuses it, because MLflow's parser would turn ``true`` into 1.0.
"""

from __future__ import annotations

import json
import operator
import warnings
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from wine_quality.core.config import FEATURES

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel
    from sklearn.pipeline import Pipeline

FEATURE_LIST = list(FEATURES)
FEATURE_SET = frozenset(FEATURES)
_NUMBERS = frozenset({int, float})
_pick = operator.itemgetter(*FEATURES)


@dataclass(frozen=True)
class Answer:
    """A response the fast path produced itself."""

    status: int
    body: bytes


def feature_rows(document: Any) -> tuple[list[Any], list[int] | None] | None:
    """The rows of a common-shape payload, and the column order to apply (None: already in order).

    Rows are lists or tuples of 11 values each; None means the payload is not a common shape.
    """
    if type(document) is not dict or len(document) != 1:
        return None
    ((key, value),) = document.items()
    if key == "dataframe_split":
        if type(value) is not dict or value.keys() != {"columns", "data"}:
            return None
        columns, data = value["columns"], value["data"]
        if type(columns) is not list or len(columns) != len(FEATURES):
            return None
        if not all(type(c) is str for c in columns) or set(columns) != FEATURE_SET:
            return None
        if type(data) is not list or not all(
            type(row) is list and len(row) == len(FEATURES) for row in data
        ):
            return None
        order = None if columns == FEATURE_LIST else [columns.index(f) for f in FEATURES]
        return data, order
    if key in ("dataframe_records", "instances", "inputs") and type(value) is list:
        if not all(type(row) is dict and row.keys() == FEATURE_SET for row in value):
            return None
        return [_pick(row) for row in value], None
    if key == "inputs" and type(value) is dict and value.keys() == FEATURE_SET:
        columns = [value[f] for f in FEATURES]
        if not all(type(c) is list for c in columns) or len({len(c) for c in columns}) != 1:
            return None
        return list(zip(*columns, strict=True)), None
    return None


def _refuse_booleans(rows: list[Any], order: list[int] | None) -> Answer:
    # The wrapper's own refusal (to_feature_frame), naming the first boolean column.
    positions = order or range(len(FEATURES))
    column = next(
        name
        for name, j in zip(FEATURES, positions, strict=True)
        if any(type(row[j]) is bool for row in rows)
    )
    message = f"column {column!r} must be numeric, got bool"
    return Answer(400, json.dumps({"error_code": "BAD_REQUEST", "message": message}).encode())


class FastScorer:
    """Scores common-shape JSON requests on one version's fitted pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    @classmethod
    def for_model(cls, model: PyFuncModel) -> FastScorer | None:
        """The fast path for a loaded version, or None if it is not this project's wrapper.

        Only a :class:`~wine_quality.model.wrapper.WineQualityRegressor` whose signature names
        exactly the 11 features qualifies: its ``predict`` is ``pipeline.predict`` on the float
        frame this module rebuilds. Any other model is served by MLflow's path alone.
        """
        from mlflow.exceptions import MlflowException

        from wine_quality.model.wrapper import WineQualityRegressor

        try:
            python_model = model.unwrap_python_model()
        except MlflowException:  # A flavor with no PythonModel inside (plain sklearn, say).
            return None
        schema = model.metadata.get_input_schema()
        if not isinstance(python_model, WineQualityRegressor) or schema is None:
            return None
        if schema.input_names() != FEATURE_LIST:
            return None
        # The pipeline was fitted on a DataFrame; the array here is ordered by name already.
        warnings.filterwarnings(
            "ignore", message="X does not have valid feature names", category=UserWarning
        )
        return cls(python_model.pipeline)

    def score(self, body: bytes, max_rows: int) -> Answer | None:
        """The answer to a JSON body, or None to leave the request to MLflow's path."""
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        found = feature_rows(document)
        if found is None:
            return None
        rows, order = found
        if not 0 < len(rows) <= max_rows:
            return None
        kinds = set(map(type, chain.from_iterable(rows)))
        if not kinds <= _NUMBERS:
            return _refuse_booleans(rows, order) if kinds <= _NUMBERS | {bool} else None
        try:
            array = np.array(rows, dtype=np.float64)
        except (OverflowError, ValueError):
            return None
        if order is not None:
            array = array[:, order]
        if not np.isfinite(array).all():
            return None  # The wrapper's message names the columns: let it answer.
        # Column-major like the wrapper's DataFrame: BLAS sums in the same order, same bits.
        predictions = self.pipeline.predict(np.asfortranarray(array))
        payload = {"predictions": np.asarray(predictions, dtype=np.float64).tolist()}
        # json.dumps with default separators: the bytes MLflow's predictions_to_json writes.
        return Answer(200, json.dumps(payload).encode())
