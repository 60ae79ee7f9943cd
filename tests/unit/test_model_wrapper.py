"""The pyfunc wrapper through a real save/load round trip, with every input form it accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wine_quality.core.config import FEATURES, RUNBOOK_PAYLOAD, TARGET
from wine_quality.model.search import TrainingConfig, fit
from wine_quality.model.wrapper import (
    PIPELINE_ARTIFACT,
    WineQualityRegressor,
    model_signature,
    save_pipeline,
    to_feature_frame,
)

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "include" / "wine_quality"
ROW = RUNBOOK_PAYLOAD["dataframe_split"]["data"][0]


@pytest.fixture(scope="module")
def pipeline(wine_frame):
    model, _ = fit(wine_frame, TrainingConfig(alphas=(0.1,), l1_ratios=(0.5,), cv_folds=2))
    return model


@pytest.fixture(scope="module")
def loaded(pipeline, tmp_path_factory):
    import mlflow

    directory = tmp_path_factory.mktemp("model")
    pipeline_path = save_pipeline(pipeline, directory)
    model_path = directory / "wine-model"
    mlflow.pyfunc.save_model(
        path=str(model_path),
        python_model=WineQualityRegressor(),
        artifacts={PIPELINE_ARTIFACT: str(pipeline_path)},
        code_paths=[str(PACKAGE_DIR)],
        signature=model_signature(),
    )
    return mlflow.pyfunc.load_model(str(model_path))


@pytest.fixture(scope="module")
def expected(pipeline):
    return float(pipeline.predict(pd.DataFrame([ROW], columns=list(FEATURES)).astype(float))[0])


def test_runbook_payload_with_ints_through_pyfunc(loaded, expected):
    frame = pd.DataFrame(RUNBOOK_PAYLOAD["dataframe_split"]["data"], columns=list(FEATURES))
    assert frame["free sulfur dioxide"].dtype.kind == "i"  # 29 and 75 arrive as ints
    predictions = loaded.predict(frame)
    assert predictions.shape == (1,)
    assert predictions[0] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "make_input",
    [
        lambda: pd.DataFrame([ROW], columns=list(FEATURES)).astype(float),
        lambda: [dict(zip(FEATURES, ROW, strict=True))],
        lambda: dict(zip(FEATURES, ROW, strict=True)),
        lambda: {name: [value] for name, value in zip(FEATURES, ROW, strict=True)},
        lambda: pd.DataFrame([ROW], columns=list(FEATURES))[list(reversed(FEATURES))],
    ],
    ids=["float-frame", "records", "one-record", "columns-dict", "reordered-frame"],
)
def test_every_named_input_form_through_pyfunc(loaded, expected, make_input):
    predictions = np.asarray(loaded.predict(make_input()))
    assert predictions.shape == (1,)
    assert predictions[0] == pytest.approx(expected, abs=1e-12)


def test_numpy_array_in_documented_order_through_the_loaded_wrapper(loaded, expected):
    # MLflow's schema check matches columns by name, so positional arrays go to the wrapper
    # itself (as loaded from the saved model), which maps them onto the documented order.
    wrapper = loaded.unwrap_python_model()
    predictions = wrapper.predict(None, np.array([ROW, ROW]))
    assert predictions.shape == (2,)
    assert predictions == pytest.approx([expected, expected], abs=1e-12)


def test_many_rows_give_one_float_each(loaded, wine_frame):
    predictions = loaded.predict(wine_frame.drop(columns=[TARGET]).head(100))
    assert predictions.shape == (100,)
    assert predictions.dtype == np.float64
    assert np.isfinite(predictions).all()


@pytest.mark.parametrize(
    ("bad_input", "message"),
    [
        (pd.DataFrame([ROW[:-1]], columns=list(FEATURES[:-1])), "missing columns \\['alcohol'\\]"),
        (pd.DataFrame([[*ROW[:-1], "strong"]], columns=list(FEATURES)), "'alcohol' must be"),
        (pd.DataFrame([[*ROW[:-1], None]], columns=list(FEATURES)), r"non-finite .* \['alcohol'\]"),
        (pd.DataFrame([[*ROW[:-1], np.inf]], columns=list(FEATURES)), "non-finite"),
        (np.ones((1, 10)), "must have 11 columns"),
        ("6.2;0.66", "unsupported input type"),
    ],
    ids=["missing-column", "text", "null", "inf", "short-array", "string"],
)  # fmt: skip
def test_bad_input_is_refused_with_the_column_named(bad_input, message):
    with pytest.raises(ValueError, match=message):
        to_feature_frame(bad_input)


def test_missing_column_is_refused_by_the_loaded_model(loaded):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="missing inputs \\['pH'\\]"):
        loaded.predict(pd.DataFrame([ROW], columns=list(FEATURES)).drop(columns=["pH"]))
