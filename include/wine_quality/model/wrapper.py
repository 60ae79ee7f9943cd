"""The served model: a custom MLflow pyfunc wrapping the fitted scaling + ElasticNet pipeline.

The wrapper exists so the model's contract is ours, not sklearn's: it takes the runbook's JSON
payload (ints such as ``29`` included), numpy arrays in the documented column order and lists or
dicts of records, and returns one float per row. The fitted pipeline is stored with skops (loading
it runs no pickled code) and loaded once, in ``load_context``; MLflow still cloudpickles the
wrapper object itself, which holds no state.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from wine_quality.core.config import FEATURES
from wine_quality.core.runtime import preload

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from sklearn.pipeline import Pipeline

PIPELINE_ARTIFACT = "pipeline"
PIPELINE_FILENAME = "pipeline.skops"


def _skops_io() -> ModuleType:
    """Import ``skops.io`` without the warning flood it causes inside an Airflow process.

    On import skops builds its list of trusted scipy ufuncs; for each of them (they have no
    ``__module__``) its ``whichmodule`` probes every loaded module with ``getattr``. Airflow's
    deprecated compatibility modules (``airflow.utils.timezone``, ...) answer any attribute
    with a ``DeprecatedImportWarning``, a ``FutureWarning``; skops silences only
    ``DeprecationWarning`` there, so one import logs ~1,160 warnings about attributes nobody
    uses. Only those warnings, raised from that skops module, are ignored, and only while
    importing.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"The `airflow\.",
            category=FutureWarning,
            module=r"skops\.io\._utils",
        )
        preload("skops.io")
        import skops.io as sio
    return sio


def save_pipeline(pipeline: Pipeline, directory: Path) -> Path:
    """Serialise a fitted pipeline with skops (safe to load: no arbitrary code on load)."""
    sio = _skops_io()
    path = Path(directory) / PIPELINE_FILENAME
    sio.dump(pipeline, path)
    return path


def load_pipeline(path: str | Path) -> Pipeline:
    """Load a pipeline saved by :func:`save_pipeline`, refusing unexpected types."""
    sio = _skops_io()

    untrusted = sio.get_untrusted_types(file=path)
    allowed = [t for t in untrusted if t.startswith(("sklearn.", "numpy."))]
    if len(allowed) != len(untrusted):
        raise ValueError(f"pipeline file {path} holds unexpected types: {untrusted}")
    return sio.load(path, trusted=allowed)


def to_feature_frame(model_input: Any) -> pd.DataFrame:
    """Coerce any supported input to a float frame with exactly the 11 feature columns in order.

    Raises:
        ValueError: Missing columns, a wrong number of array columns or non-numeric values.
    """
    if isinstance(model_input, pd.DataFrame):
        frame = model_input
    elif isinstance(model_input, np.ndarray):
        array = np.atleast_2d(model_input)
        if array.ndim != 2 or array.shape[1] != len(FEATURES):
            raise ValueError(
                f"array input must have {len(FEATURES)} columns in the order {list(FEATURES)};"
                f" got shape {model_input.shape}"
            )
        frame = pd.DataFrame(array, columns=list(FEATURES))
    elif isinstance(model_input, dict):
        # A single record, or a column -> values mapping.
        values = list(model_input.values())
        is_columns = bool(values) and all(isinstance(v, list | tuple | np.ndarray) for v in values)
        frame = pd.DataFrame(model_input) if is_columns else pd.DataFrame([model_input])
    elif isinstance(model_input, list | tuple):
        frame = pd.DataFrame(list(model_input))
        if not frame.empty and list(frame.columns) == list(range(len(FEATURES))):
            frame.columns = list(FEATURES)
    else:
        raise ValueError(f"unsupported input type {type(model_input).__name__}")
    missing = [column for column in FEATURES if column not in frame.columns]
    if missing:
        raise ValueError(f"input is missing columns {missing}")
    features = pd.DataFrame(index=frame.index)
    for column in FEATURES:
        values = frame[column]
        if values.dtype == bool or not (
            pd.api.types.is_numeric_dtype(values) or values.dtype == object
        ):
            raise ValueError(f"column {column!r} must be numeric, got {values.dtype}")
        try:
            features[column] = pd.to_numeric(values, errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {column!r} must be numeric: {exc}") from exc
    bad = ~np.isfinite(features.to_numpy())
    if bad.any():
        columns = sorted({FEATURES[j] for j in np.nonzero(bad)[1]})
        raise ValueError(f"null or non-finite values in columns {columns}")
    return features


def model_signature() -> ModelSignature:
    """The logged signature: the 11 named, required feature columns and one float output.

    The inputs are typed ``Any`` on purpose: MLflow's schema enforcement refuses int64 -> double
    as an unsafe cast, yet the runbook's payload (and most people) send ``29`` not ``29.0``.
    Names and presence are still enforced by MLflow; numeric coercion and finiteness are
    enforced by :func:`to_feature_frame` with a message naming the column.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), name) for name in FEATURES]),
        outputs=Schema([ColSpec("double")]),
    )


class WineQualityRegressor(PythonModel):
    """Predicts the wine quality score (0-10, continuous) from 11 physicochemical features."""

    def __init__(self) -> None:
        self._pipeline: Pipeline | None = None

    @property
    def pipeline(self) -> Pipeline:
        """The fitted pipeline ``predict`` runs (the model server scores on it directly).

        Raises:
            RuntimeError: The model has not been loaded yet.
        """
        if self._pipeline is None:
            raise RuntimeError("model used before load_context")
        return self._pipeline

    def load_context(self, context: PythonModelContext) -> None:
        """Load the fitted pipeline once, when MLflow loads the model."""
        self._pipeline = load_pipeline(context.artifacts[PIPELINE_ARTIFACT])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Return one predicted quality per input row.

        Args:
            context: MLflow's model context (unused: the pipeline is loaded in ``load_context``).
            model_input: The feature rows. MLflow converts JSON payloads to a DataFrame using the
                logged signature; direct callers may also pass an array or records.
            params: Unused; accepted for MLflow's protocol.

        Returns:
            A float64 array with one prediction per row.
        """
        return np.asarray(self.pipeline.predict(to_feature_frame(model_input)), dtype="float64")
