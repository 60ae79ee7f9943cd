"""Domain constants, and the one place that reads infrastructure settings from the environment.

Constants are module-level and fixed. Settings (URIs, tokens) come from the environment only when
``Settings.from_env()`` is called, never at import time, so importing this module has no effect.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wine_quality.core.errors import SettingsError, UnknownParamError

DAG_ID = "wine_retraining"
MODEL_NAME = "ElasticNetWineModel"
EXPERIMENT_NAME = "wine_retraining"
PRODUCTION_ALIAS = "production"
PREVIOUS_ALIAS = "previous_production"
# Kept in sync with the alias so the runbook's ``models:/ElasticNetWineModel/Production`` resolves.
LEGACY_STAGE = "Production"

# The public UCI file; machines without internet point WINE_DATA_URI elsewhere.
DEFAULT_DATA_URI = (
    "https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality/winequality-red.csv"
)
CSV_SEPARATOR = ";"
# Sources above this are refused at ingest (WINE_MAX_SOURCE_MB overrides it). The real file is
# 84 kB and 16 M rows are about 1.3 GB; a bigger source is more likely a wrong file or a runaway
# export than data, and ingest streams it, so the limit guards disk and time, not memory.
DEFAULT_MAX_SOURCE_MB = 2048
MB = 1024 * 1024

FEATURES: tuple[str, ...] = (
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
)
TARGET = "quality"
COLUMNS: tuple[str, ...] = (*FEATURES, TARGET)

# The runbook's curl payload (SEED.md step 8): it must keep working against every version.
RUNBOOK_PAYLOAD: dict = {
    "dataframe_split": {
        "columns": list(FEATURES),
        "data": [[6.2, 0.66, 0.48, 1.2, 0.029, 29, 75, 0.98, 3.33, 0.39, 12.8]],
    }
}


def model_uri(version: str | int, name: str = MODEL_NAME) -> str:
    """The registry URI of one model version (``models:/<name>/<version>``)."""
    return f"models:/{name}/{version}"


def alias_uri(alias: str = PRODUCTION_ALIAS, name: str = MODEL_NAME) -> str:
    """The registry URI that follows an alias (``models:/<name>@<alias>``)."""
    return f"models:/{name}@{alias}"


SEED = 42
HOLDOUT_FRACTION = 0.2
CV_FOLDS = 5
# The grid search runs on at most this many training rows (a seeded sample, stratified by
# quality); the chosen parameters are then refitted on all of them. Each CV fold then scores
# 10,000 rows, which pins an RMSE near 0.65 down to about +-0.005: finer than the differences
# the grid can show, so more rows only make the search slower (20 candidates x 5 folds grew
# linearly with the data), never better informed. Below this size every row is searched.
SEARCH_ROWS = 50_000
MIN_ROWS = 500

# Defaults of the run-time knobs: the DAG's Params take them from here (one source).
DEFAULT_ALPHAS: tuple[float, ...] = (0.001, 0.01, 0.1, 0.5, 1.0)
# The grid every DAG run has used (this module's copy had drifted from the DAG's).
DEFAULT_L1_RATIOS: tuple[float, ...] = (0.1, 0.5, 0.9, 1.0)
DEFAULT_MAX_RMSE = 0.80
DEFAULT_MIN_R2 = 0.25
DEFAULT_MIN_IMPROVEMENT = 0.005
# The promotion gate: the upper bound of this two-sided interval of ΔRMSE must be below
# -min_improvement. 2,000 paired resamples put the bounds' own noise near 1e-4 on ~300 rows.
DEFAULT_CI_LEVEL = 0.95
DEFAULT_BOOTSTRAP_RESAMPLES = 2000
# Fewer holdout rows than this left after removing production's training rows: no comparison.
MIN_COMPARISON_ROWS = 30
DEFAULT_CANARY_ROWS = 50
DEFAULT_CANARY_P95_MS = 500.0
PREDICTION_TOLERANCE = 1e-6
# Drift of a new snapshot against production's training data (wine_quality.gate.drift).
# PSI 0.2: the customary line between a minor shift and one that calls for a new model.
DEFAULT_DRIFT_PSI = 0.2
# KS 0.1: a gap one sees between the CDFs (the p-value calls any shift in thousands of rows real).
DEFAULT_DRIFT_KS = 0.1
# Human approval before promotion: when to ask ("on_drift": only when the evaluation found the
# data drifted), and how long to wait before the silence counts as a rejection (a day: the next
# night's run would otherwise queue behind the pending question).
APPROVAL_MODES: tuple[str, ...] = ("always", "on_drift", "never")
DEFAULT_APPROVAL = "on_drift"
DEFAULT_APPROVAL_TIMEOUT_MINUTES = 24 * 60

# When the DAG runs: every night at 02:00 UTC, and whenever new data lands (the data asset).
NIGHTLY_CRON = "0 2 * * *"
SCHEDULE_TIMEZONE = "UTC"
# The data asset's name; its URI comes from the environment (wine_quality.data.source).
DATA_ASSET_NAME = "wine_quality_data"
# The key of an asset event's extra that names the data that landed.
ASSET_EVENT_DATA_URI_KEY = "data_uri"

TRACKING_URI_DEFAULT = "http://127.0.0.1:5000"
MODEL_SERVER_URL_DEFAULT = "http://127.0.0.1:1234"


@dataclass(frozen=True)
class Settings:
    """Infrastructure settings, read from the environment when asked.

    Attributes:
        tracking_uri: MLflow tracking server (``MLFLOW_TRACKING_URI``).
        model_server_url: The deployed scoring endpoint (``WINE_MODEL_SERVER_URL``).
        model_server_token: Bearer token for the server's reload endpoint
            (``WINE_MODEL_SERVER_TOKEN``); empty means reloads are refused.
        data_uri: Where raw data comes from (``WINE_DATA_URI``).
        staging_uri: Where each run's immutable raw snapshot is kept (``WINE_STAGING_URI``):
            a local folder or ``s3://bucket/prefix``.
        s3_conn_id: Airflow connection for ``s3://`` data and snapshots (``WINE_S3_CONN_ID``);
            its extra carries the endpoint (MinIO). MLflow's artifact store is not reached with
            it: artifacts go through the tracking server.
        run_summary_file: Where the ``Summary`` task also writes the run summary as JSON
            (``WINE_RUN_SUMMARY_FILE``); None: nowhere.
        max_source_mb: Largest source ingest accepts, in MB of 2**20 bytes
            (``WINE_MAX_SOURCE_MB``).
    """

    tracking_uri: str = TRACKING_URI_DEFAULT
    model_server_url: str = MODEL_SERVER_URL_DEFAULT
    model_server_token: str = field(default="", repr=False)
    data_uri: str = DEFAULT_DATA_URI
    staging_uri: str = ".local/staging"
    s3_conn_id: str = "wine_s3"
    run_summary_file: str | None = None
    max_source_mb: int = DEFAULT_MAX_SOURCE_MB

    @property
    def max_source_bytes(self) -> int:
        """``max_source_mb`` in bytes."""
        return self.max_source_mb * MB

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``), falling back to defaults.

        Raises:
            SettingsError: ``WINE_MAX_SOURCE_MB`` is not a positive whole number.
        """
        env = dict(os.environ if env is None else env)
        return cls(
            tracking_uri=env.get("MLFLOW_TRACKING_URI") or TRACKING_URI_DEFAULT,
            model_server_url=(env.get("WINE_MODEL_SERVER_URL") or MODEL_SERVER_URL_DEFAULT).rstrip(
                "/"
            ),
            model_server_token=env.get("WINE_MODEL_SERVER_TOKEN", ""),
            data_uri=env.get("WINE_DATA_URI") or DEFAULT_DATA_URI,
            staging_uri=env.get("WINE_STAGING_URI") or ".local/staging",
            s3_conn_id=env.get("WINE_S3_CONN_ID") or "wine_s3",
            run_summary_file=env.get("WINE_RUN_SUMMARY_FILE") or None,
            max_source_mb=_positive_int(env, "WINE_MAX_SOURCE_MB", DEFAULT_MAX_SOURCE_MB),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    """``env[name]`` as a positive int, ``default`` if unset or empty."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        # A typo must not silently fall back to the default: it would hide the intended limit.
        raise SettingsError(f"{name}={text!r} is not a positive whole number (default {default})")
    return value


def check_conf_keys(conf: Mapping[str, Any] | None, valid_keys: Iterable[str]) -> None:
    """Refuse a run configuration that names a knob the pipeline does not have.

    A misspelt key (``max_rsme``) would otherwise be ignored and the run would use the
    default, which is worse than not running at all.

    Raises:
        UnknownParamError: Some key of ``conf`` is not in ``valid_keys``; the message names
            the unknown keys and lists the valid ones.
    """
    valid = sorted(valid_keys)
    unknown = sorted(set(conf or {}) - set(valid))
    if unknown:
        raise UnknownParamError(
            f"unknown run configuration key{'s' if len(unknown) > 1 else ''}"
            f" {', '.join(repr(k) for k in unknown)}; valid keys are: {', '.join(valid)}"
        )
