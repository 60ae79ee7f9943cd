"""The server's fast path against MLflow's own scoring app, on the same loaded wrapper.

Every request the fast path answers must get the very bytes MLflow's path answers (so the
predictions are bit for bit the pyfunc wrapper's); every other request must be left to MLflow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from wine_quality.core.config import FEATURES, RUNBOOK_PAYLOAD, TARGET
from wine_quality.model.search import TrainingConfig, fit
from wine_quality.model.wrapper import (
    PIPELINE_ARTIFACT,
    WineQualityRegressor,
    model_signature,
    save_pipeline,
)
from wine_quality.serving.fast import FastScorer
from wine_quality.serving.limits import is_json

ROW = RUNBOOK_PAYLOAD["dataframe_split"]["data"][0]
MAX_ROWS = 10_000


@pytest.fixture(scope="module")
def loaded(wine_frame, tmp_path_factory):
    import mlflow

    pipeline, _ = fit(wine_frame, TrainingConfig(alphas=(0.1,), l1_ratios=(0.5,), cv_folds=2))
    directory = tmp_path_factory.mktemp("model")
    mlflow.pyfunc.save_model(
        path=str(directory / "wine-model"),
        python_model=WineQualityRegressor(),
        artifacts={PIPELINE_ARTIFACT: str(save_pipeline(pipeline, directory))},
        signature=model_signature(),
    )
    return mlflow.pyfunc.load_model(str(directory / "wine-model"))


@pytest.fixture(scope="module")
def scorer(loaded):
    fast = FastScorer.for_model(loaded)
    assert fast is not None
    return fast


@pytest.fixture(scope="module")
def mlflow_app(loaded):
    from mlflow.pyfunc import scoring_server
    from starlette.testclient import TestClient

    return TestClient(scoring_server.init(loaded))


def records(rows: list[list[float]]) -> list[dict[str, float]]:
    return [dict(zip(FEATURES, row, strict=True)) for row in rows]


def payloads(rows: list[list[float]]) -> dict[str, dict]:
    """The same rows in every shape the fast path answers."""
    reordered = list(reversed(FEATURES))
    return {
        "dataframe_split": {"dataframe_split": {"columns": list(FEATURES), "data": rows}},
        "split-reordered": {
            "dataframe_split": {
                "columns": reordered,
                "data": [[dict(zip(FEATURES, r, strict=True))[c] for c in reordered] for r in rows],
            }
        },
        "dataframe_records": {"dataframe_records": records(rows)},
        "instances": {"instances": records(rows)},
        "inputs-records": {"inputs": records(rows)},
        "inputs-columns": {"inputs": {f: [r[j] for r in rows] for j, f in enumerate(FEATURES)}},
    }


def real_rows(wine_frame, n: int) -> list[list[float]]:
    return wine_frame.drop(columns=[TARGET]).head(n).to_numpy().tolist()


@pytest.mark.parametrize("rows", ["runbook-ints", "one-real", "hundred-real", "all-real"])
@pytest.mark.parametrize(
    "shape",
    ["dataframe_split", "split-reordered", "dataframe_records", "instances", "inputs-records",
     "inputs-columns"],
)  # fmt: skip
def test_answers_are_byte_identical_to_mlflows(scorer, mlflow_app, wine_frame, rows, shape):
    data = {
        "runbook-ints": [ROW],
        "one-real": real_rows(wine_frame, 1),
        "hundred-real": real_rows(wine_frame, 100),
        "all-real": real_rows(wine_frame, len(wine_frame)),
    }[rows]
    body = json.dumps(payloads(data)[shape]).encode()
    answer = scorer.score(body, MAX_ROWS)
    stock = mlflow_app.post(
        "/invocations", content=body, headers={"Content-Type": "application/json"}
    )
    assert stock.status_code == 200, stock.text[:300]
    assert answer is not None
    assert answer.status == 200
    assert answer.body == stock.content


def test_predictions_equal_the_offline_wrapper_bit_for_bit(scorer, loaded, wine_frame):
    features = wine_frame.drop(columns=[TARGET])
    body = json.dumps(payloads(features.to_numpy().tolist())["dataframe_split"]).encode()
    fast = np.array(json.loads(scorer.score(body, MAX_ROWS).body)["predictions"])
    offline = loaded.predict(features.astype("float64"))
    assert np.array_equal(fast, offline)


SPLIT = payloads([ROW])["dataframe_split"]["dataframe_split"]


def split_body(**changes) -> bytes:
    return json.dumps({"dataframe_split": {**SPLIT, **changes}}).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="invalid-json"),
        pytest.param(b"[1, 2]", id="json-array"),
        pytest.param(split_body(data=[[*ROW[:-1], None]]), id="null"),
        pytest.param(split_body(data=[[*ROW[:-1], "12.8"]]), id="text"),
        pytest.param(split_body(data=[]), id="no-rows"),
        pytest.param(split_body(data=[ROW[:-1]]), id="short-row"),
        pytest.param(split_body(data=[[*ROW[:-1], 1e999]]), id="infinity"),
        pytest.param(split_body(index=[0]), id="split-with-index"),
        pytest.param(split_body(columns=[*FEATURES[:-1], "x"]), id="other-column"),
        pytest.param(split_body(data=[ROW] * (MAX_ROWS + 1)), id="too-many-rows"),
    ],
)
def test_other_split_requests_are_left_to_mlflow(scorer, body):
    assert scorer.score(body, MAX_ROWS) is None


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"dataframe_records": [{**records([ROW])[0], "extra": 1}]}, id="extra-key"),
        pytest.param({"instances": [ROW]}, id="instances-lists"),
        pytest.param({"inputs": {f: 1.0 for f in FEATURES}}, id="inputs-scalars"),
        pytest.param({**RUNBOOK_PAYLOAD, "params": {"a": 1}}, id="params"),
        pytest.param({"dataframe_records": [], "instances": []}, id="two-formats"),
    ],
)
def test_other_shapes_are_left_to_mlflow(scorer, payload):
    assert scorer.score(json.dumps(payload).encode(), MAX_ROWS) is None


def test_a_boolean_is_refused_naming_its_column(scorer):
    answer = scorer.score(split_body(data=[[*ROW[:-1], True]]), MAX_ROWS)
    assert answer.status == 400
    assert json.loads(answer.body) == {
        "error_code": "BAD_REQUEST",
        "message": "column 'alcohol' must be numeric, got bool",
    }


@pytest.mark.parametrize(
    ("content_type", "plain"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/json;charset=UTF-8", True),
        ("application/json; charset=latin-1", False),
        ("application/json; format=pandas-split", False),
        ("text/json", False),
        ("Application/JSON", False),  # MLflow compares the type case-sensitively
        ("text/csv", False),
    ],
)
def test_which_content_types_take_the_fast_path(content_type, plain):
    assert is_json(content_type) is plain


def test_other_kinds_of_model_get_no_fast_path(tmp_path):
    import mlflow
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(np.ones((3, len(FEATURES))), [1.0, 2.0, 3.0])
    mlflow.sklearn.save_model(model, str(tmp_path / "plain"))
    assert FastScorer.for_model(mlflow.pyfunc.load_model(str(tmp_path / "plain"))) is None
