"""What a task's log shows: MLflow at its real level, and no warning flood from skops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, timeout=180, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "include"), **env},
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


MLFLOW_LOGGER = """
import io, json, logging{before}
import mlflow{after}
from mlflow.utils.logging_utils import disable_logging, enable_logging, suppress_logs_in_thread
host = io.StringIO()
handler = logging.StreamHandler(host)
handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.INFO)
logging.getLogger("mlflow.models").info("shown")
with suppress_logs_in_thread():
    logging.getLogger("mlflow.models").info("silenced by MLflow in this thread")
disable_logging()
logging.getLogger("mlflow.models").info("silenced by MLflow's switch")
enable_logging()
print(json.dumps(host.getvalue().splitlines()))
"""
USE = "\nfrom wine_quality.core.logs import use_host_logging; use_host_logging()"


@pytest.mark.parametrize(
    ("before", "after"), [(USE, ""), ("", USE)], ids=["before-import", "after-import"]
)
def test_mlflow_records_reach_the_host_at_their_level(before, after):
    # Only the host's handler wrote it (MLflow's own would write to stderr, not here), at INFO,
    # and what MLflow silences stays silent.
    out = python(MLFLOW_LOGGER.format(before=before, after=after))
    assert json.loads(out) == ["INFO mlflow.models shown"]


def test_an_explicit_operator_choice_is_kept():
    out = python(MLFLOW_LOGGER.format(before=USE, after=""), MLFLOW_CONFIGURE_LOGGING="true")
    assert json.loads(out) == []  # MLflow's own handler, which does not propagate


SKOPS_IMPORT = """
import warnings
import airflow.sdk, airflow.models  # loads Airflow's deprecated compatibility modules
from wine_quality.model.wrapper import _skops_io
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    _skops_io()
print(len(caught))
"""


def test_importing_skops_next_to_airflow_logs_no_warnings():
    # Without the filter this import records ~1,160 DeprecatedImportWarnings.
    assert python(SKOPS_IMPORT) == "0"
