"""Hostile and malformed requests against the deployed model server, serving the real wrapper.

Each must get a 4xx with a short JSON message (never a 5xx, never a stack trace), and the server
must keep serving the runbook's payload afterwards. Stock `mlflow models serve` fails several of
these (500 on a missing Content-Type, a traceback for nulls): ours must not.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.reliability import record
from wine_quality.core.config import EXPERIMENT_NAME, FEATURES, RUNBOOK_PAYLOAD, Settings
from wine_quality.data.ingest import ingest
from wine_quality.model.train import train_from_snapshot
from wine_quality.release.deploy import deploy
from wine_quality.release.registry import promote

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROW = RUNBOOK_PAYLOAD["dataframe_split"]["data"][0]
MAX_ERROR_BYTES = 2048


def split(rows: list[list]) -> bytes:
    return json.dumps({"dataframe_split": {"columns": list(FEATURES), "data": rows}}).encode()


JSON = {"Content-Type": "application/json"}
HOSTILE = {
    "no-content-type": ({}, split([ROW]), 415),
    "wrong-content-type": ({"Content-Type": "text/plain"}, split([ROW]), 415),
    "xml-content-type": ({"Content-Type": "application/xml"}, b"<wine/>", 415),
    "invalid-json": (JSON, b'{"dataframe_split": {"columns": [', 400),
    "not-utf8": (JSON, b'{"dataframe_split": "\xff\xfe"}', 400),
    "null-values": (JSON, split([[None] * len(FEATURES)]), 400),
    "one-null": (JSON, split([[*ROW[:-1], None]]), 400),
    "string-in-numeric": (JSON, split([[*ROW[:-1], "strong"]]), 400),
    "missing-columns": (
        JSON,
        json.dumps({"dataframe_split": {"columns": FEATURES[:-1], "data": [ROW[:-1]]}}).encode(),
        400,
    ),
    "wrong-row-length": (JSON, split([ROW[:5]]), 400),
    "empty-body": (JSON, b"", 400),
    "whitespace-body": (JSON, b"   \n", 400),
    "json-null": (JSON, b"null", 400),
    "json-array": (JSON, b"[1, 2, 3]", 400),
    "unknown-key": (JSON, b'{"rows": [[1, 2]]}', 400),
    "huge-body": (JSON, b'{"dataframe_split": {"data": [' + b"1," * 3_000_000 + b"1]}}", 413),
    "too-many-rows": (JSON, split([ROW] * 10_001), 413),
    "deeply-nested": (JSON, b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),
    "infinity": (JSON, split([[*ROW[:-1], 1e309]]).replace(b"Infinity", b"1e999"), 400),
}  # fmt: skip


def parquet(rows: list[list]) -> bytes:
    import io

    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame(rows, columns=list(FEATURES)).astype("float64").to_parquet(buffer)
    return buffer.getvalue()


# Protocol cases found by running MLflow's own scoring-server request cases against both
# servers: each is (headers, body, status, words the message must contain).
PROTOCOL = {
    "null-keeps-its-reason": (
        JSON, split([[*ROW[:-1], None]]), 400, "null or non-finite values in columns ['alcohol']",
    ),
    "nan-keeps-its-reason": (
        JSON, split([[*ROW[:8], float("nan"), *ROW[9:]]]), 400,
        "null or non-finite values in columns ['pH']",
    ),
    "infinity-keeps-its-reason": (
        JSON, split([[*ROW[:8], float("inf"), *ROW[9:]]]), 400,
        "null or non-finite values in columns ['pH']",
    ),
    "text-keeps-its-reason": (JSON, split([[*ROW[:-1], "strong"]]), 400, "'alcohol' must be"),
    "no-rows-keeps-its-reason": (JSON, split([]), 400, "0 sample(s)"),
    "boolean-keeps-its-reason": (JSON, split([[*ROW[:-1], True]]), 400, "'alcohol' must be"),
    "csv-null-keeps-its-reason": (
        {"Content-Type": "text/csv"},
        (",".join(FEATURES) + "\n" + ",".join(map(str, ROW[:-1])) + ",\n").encode(),
        400, "null or non-finite values in columns ['alcohol']",
    ),
    "text-json-is-the-wrong-type": (
        {"Content-Type": "text/json"}, b'{"dataframe_split": {"columns": [', 415, "content types",
    ),
    "too-many-parquet-rows": (
        {"Content-Type": "application/vnd.apache.parquet"}, parquet([ROW] * 10_001), 413,
        "10001 rows",
    ),
    "too-many-csv-rows": (
        {"Content-Type": "text/csv"},
        (",".join(FEATURES) + "\n" + (",".join(map(str, ROW)) + "\n") * 10_001).encode(),
        413, "10001 rows",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def served(stack, wine_csv):
    """Production v1 trained by the pipeline's own task functions and deployed to the server."""
    settings = Settings.from_env(
        {
            "MLFLOW_TRACKING_URI": stack.tracking_uri,
            "WINE_MODEL_SERVER_URL": stack.server_url,
            "WINE_MODEL_SERVER_TOKEN": stack.script("stack.sh", "token").stdout.strip(),
            "WINE_STAGING_URI": str(stack.state / "staging"),
        }
    )
    ingested = ingest(str(wine_csv), settings.staging_uri, "hostile")
    candidate = train_from_snapshot(
        ingested, tracking_uri=settings.tracking_uri, experiment_name=EXPERIMENT_NAME,
        alphas=[0.1], l1_ratios=[0.5], dag_id="wine_retraining", airflow_run_id="hostile-requests",
    )  # fmt: skip
    promotion = promote(
        tracking_uri=settings.tracking_uri, version=candidate.version, expected_production=None,
        airflow_run_id="hostile",
    )  # fmt: skip
    deploy(
        server_url=settings.model_server_url, token=settings.model_server_token,
        expected_version=promotion.version,
    )  # fmt: skip
    return candidate.version


def assert_still_serving(stack, version: str) -> None:
    response = requests.post(f"{stack.server_url}/invocations", json=RUNBOOK_PAYLOAD, timeout=10)
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1
    assert response.headers["X-Model-Version"] == version


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_request_gets_a_short_4xx(stack, served, kind):
    headers, body, status = HOSTILE[kind]
    response = requests.post(
        f"{stack.server_url}/invocations", data=body, headers=headers, timeout=60
    )
    assert response.status_code == status, response.text[:500]
    assert len(response.content) <= MAX_ERROR_BYTES
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    assert response.json()["message"]
    assert_still_serving(stack, served)
    record(
        "hostile requests", kind, f"POST /invocations: {kind.replace('-', ' ')}",
        f"HTTP {response.status_code}: {response.json()['message'][:100]}",
        "short JSON error, no stack trace; runbook payload still served",
    )  # fmt: skip


def test_thousands_of_valid_rows_are_scored(stack, served):
    response = requests.post(
        f"{stack.server_url}/invocations", data=split([ROW] * 5000), headers=JSON, timeout=60
    )
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 5000
    assert len(set(predictions)) == 1
    record(
        "hostile requests", "thousands-of-rows", "5,000 valid rows in one request",
        "HTTP 200 with 5,000 predictions", "one identical prediction per identical row",
    )  # fmt: skip


def test_reload_without_token_changes_nothing(stack, served):
    response = requests.post(f"{stack.server_url}/admin/reload", timeout=10)
    assert response.status_code == 401
    assert stack.served()["version"] == served


@pytest.mark.parametrize("kind", list(PROTOCOL))
def test_protocol_case_gets_its_4xx_with_the_reason(stack, served, kind):
    headers, body, status, words = PROTOCOL[kind]
    response = requests.post(
        f"{stack.server_url}/invocations", data=body, headers=headers, timeout=60
    )
    assert response.status_code == status, response.text[:500]
    assert words in response.json()["message"]
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    assert "unexpected error" not in response.text  # MLflow's generic sentence, not the reason
    assert_still_serving(stack, served)
    record(
        "hostile requests", kind, f"POST /invocations: {kind.replace('-', ' ')}",
        f"HTTP {response.status_code}: {response.json()['message'][:100]}",
        "the model's or the protocol's own reason, no stack trace",
    )  # fmt: skip


@pytest.mark.parametrize(
    "csv",
    [
        pytest.param(",".join(FEATURES) + "\n" + ",".join(map(str, ROW)) + "\n", id="runbook-ints"),
        pytest.param(None, id="to_csv-floats"),
    ],
)
def test_csv_is_scored_like_json(stack, served, csv):
    import pandas as pd

    if csv is None:
        csv = pd.DataFrame([ROW], columns=list(FEATURES)).astype("float64").to_csv(index=False)
    url = f"{stack.server_url}/invocations"
    response = requests.post(url, data=csv, headers={"Content-Type": "text/csv"}, timeout=10)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["X-Model-Version"] == served
    assert response.json() == requests.post(url, json=RUNBOOK_PAYLOAD, timeout=10).json()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_body_gets_its_413_not_a_reset(stack, served, chunked):
    # The whole body is sent before the answer is read: a server that closes with bytes unread
    # makes the kernel reset the connection, and the client never sees the 413.
    body = b'{"dataframe_split": {"data": [' + b"1," * 3_000_000 + b"1]}}"
    data = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    for _ in range(3):
        response = requests.post(
            f"{stack.server_url}/invocations", data=data, headers=JSON, timeout=60
        )
        assert response.status_code == 413
        assert "larger than" in response.json()["message"]
        # The body was drained before the answer, so the connection may stay open.
        assert response.headers.get("Connection", "").lower() != "close"
        data = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    assert_still_serving(stack, served)


@pytest.mark.parametrize("rows", [1, 10_000])
def test_parquet_up_to_the_row_cap_is_scored(stack, served, rows):
    # The cap refuses 10,001 rows (PROTOCOL): the same check must let the cap itself through.
    response = requests.post(
        f"{stack.server_url}/invocations", data=parquet([ROW] * rows),
        headers={"Content-Type": "application/vnd.apache.parquet"}, timeout=60,
    )  # fmt: skip
    assert response.status_code == 200, response.text[:500]
    assert response.headers["X-Model-Version"] == served
    predictions = response.json()["predictions"]
    assert len(predictions) == rows
    expected = requests.post(f"{stack.server_url}/invocations", json=RUNBOOK_PAYLOAD, timeout=10)
    assert predictions[0] == pytest.approx(expected.json()["predictions"][0], abs=1e-9)


def test_csv_up_to_the_row_cap_is_scored(stack, served):
    # Blank lines are not rows (pandas skips them): the cap counts only what is scored.
    csv = ",".join(FEATURES) + "\n" + (",".join(map(str, ROW)) + "\n") * 10_000 + "\n\n"
    response = requests.post(
        f"{stack.server_url}/invocations", data=csv, headers={"Content-Type": "text/csv"},
        timeout=60,
    )  # fmt: skip
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["predictions"]) == 10_000
