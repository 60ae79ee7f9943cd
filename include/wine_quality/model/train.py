"""Training: a duplicate-aware split, a small seeded grid search, and an idempotent registration.

The same snapshot and settings always produce the same model (fixed seed, deterministic split and
folds), so a rerun on unchanged data cannot beat production by chance. A retried task finds the
version it already registered by its ``airflow_run_id`` tag instead of registering another.

The grid search itself (a bounded, stratified sample, then one fit on every training row) is
:mod:`wine_quality.model.search`; this module logs, registers and finds again what it produced.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wine_quality import __version__
from wine_quality.core import config
from wine_quality.core.config import FEATURES, MODEL_NAME, TARGET
from wine_quality.core.runtime import preload
from wine_quality.core.tracking import ensure_experiment, using
from wine_quality.data.holdout import (
    HOLDOUT_ARTIFACT,
    holdout_digest,
    split_holdout,
    split_rule,
    write_holdout,
)
from wine_quality.data.ingest import IngestResult, load_snapshot
from wine_quality.model.search import TrainingConfig, fit, regression_metrics

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

MODEL_ARTIFACT_NAME = "model"
# What the served model needs at load time, pinned to the versions it was trained with.
SERVING_PACKAGES = ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy")


@dataclass(frozen=True)
class Candidate:
    """A registered candidate version and how to find what it was evaluated on."""

    run_id: str
    version: str
    model_uri: str
    holdout_uri: str
    holdout_digest: str
    holdout_rows: int
    best_params: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)
    reused: bool = False
    # Lineage: the snapshot it was trained on and the rule that kept its holdout apart.
    data_sha256: str = ""
    snapshot_uri: str = ""
    split_rule: str = ""


def dataset_input(
    frame: pd.DataFrame, name: str, source: str, digest: str, context: str
) -> DatasetInput:
    """``frame`` as a run input, as ``mlflow.log_input(mlflow.data.from_pandas(...))`` logs it.

    MLflow's own path looks at every cell in Python twice (its digest checks each cell's type,
    its schema each cell for a missing value): 20 s per million rows. Here the digest is ours
    (it names the same content exactly), the schema is inferred from the first rows (validation
    has refused missing values, so every column is required), and the profile counts all rows.
    """
    import json

    import mlflow
    from mlflow.entities import Dataset, DatasetInput, InputTag

    head = mlflow.data.from_pandas(
        frame.head(1000), source=source, targets=TARGET, name=name, digest=digest
    ).to_dict()
    head["profile"] = json.dumps({"num_rows": len(frame), "num_elements": int(frame.size)})
    return DatasetInput(
        dataset=Dataset(**{key: head[key] for key in _DATASET_FIELDS}),
        tags=[InputTag(key="mlflow.data.context", value=context)],
    )


_DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")


def serving_requirements() -> list[str]:
    """Exact pins of what the served model imports, read from this environment."""
    return [f"{name}=={metadata.version(name)}" for name in SERVING_PACKAGES]


def _run_metrics(table: list[dict[str, Any]], metrics: dict[str, float]) -> list[Any]:
    """``cv_rmse`` per grid point (step = its index) and ``metrics`` at step 0, as MLflow
    ``Metric`` entities with one timestamp, for a single ``log_batch``."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    series = [Metric("cv_rmse", float(r["cv_rmse_mean"]), now, i) for i, r in enumerate(table)]
    return series + [Metric(key, float(value), now, 0) for key, value in metrics.items()]


def find_version_for_run(mlflow_client: MlflowClient, airflow_run_id: str) -> ModelVersion | None:
    """The version a previous attempt of this DAG run registered, if any."""
    escaped = airflow_run_id.replace("'", "\\'")
    versions = mlflow_client.search_model_versions(
        f"name = '{MODEL_NAME}' and tags.airflow_run_id = '{escaped}'"
    )
    return min(versions, key=lambda v: int(v.version)) if versions else None


def _candidate_from_version(
    mlflow_client: MlflowClient, version: ModelVersion, *, reused: bool
) -> Candidate:
    run = mlflow_client.get_run(version.run_id)
    params = run.data.params
    return Candidate(
        run_id=version.run_id,
        version=str(version.version),
        model_uri=config.model_uri(version.version),
        holdout_uri=f"runs:/{version.run_id}/{HOLDOUT_ARTIFACT}",
        holdout_digest=run.data.tags["holdout_digest"],
        holdout_rows=int(float(run.data.metrics.get("holdout_rows", 0))),
        best_params={"alpha": float(params["alpha"]), "l1_ratio": float(params["l1_ratio"])},
        metrics={k: float(run.data.metrics[k]) for k in ("rmse", "mae", "r2")},
        reused=reused,
        data_sha256=version.tags.get("data_sha256", ""),
        snapshot_uri=version.tags.get("data_snapshot_uri", ""),
        split_rule=version.tags.get("split_rule", ""),
    )


def _register(model_uri: str, tags: dict[str, str]) -> ModelVersion:
    import mlflow

    # register_model creates the registered model on first use and resolves MLflow 3's
    # logged-model id from the ``models:/m-…`` URI.
    return mlflow.register_model(model_uri, MODEL_NAME, tags=tags)


def train_and_register(
    *,
    tracking_uri: str,
    experiment_name: str,
    frame: pd.DataFrame,
    data_sha256: str,
    snapshot_uri: str,
    dag_id: str,
    airflow_run_id: str,
    cfg: TrainingConfig,
    code_version: str,
) -> Candidate:
    """Train on the validated frame, log everything to MLflow and register one version.

    Idempotent per ``airflow_run_id``: if a version with that tag exists it is returned; if an
    earlier attempt finished its run but crashed before registering, that run's model is
    registered instead of training again.

    Args:
        tracking_uri: MLflow tracking server.
        experiment_name: Experiment that holds the pipeline's runs.
        frame: The validated data (all 12 columns).
        data_sha256: sha256 of the snapshot bytes ``frame`` was parsed from.
        snapshot_uri: Where those bytes live (logged as the dataset source).
        dag_id: Airflow DAG id (tag).
        airflow_run_id: Airflow run id (tag, and the idempotency key).
        cfg: Search grid and split settings.
        code_version: Version of this package (tag).

    Returns:
        The registered candidate.
    """
    import mlflow

    from wine_quality.model.wrapper import (
        PIPELINE_ARTIFACT,
        WineQualityRegressor,
        model_signature,
        save_pipeline,
    )

    # The fluent API (start_run, log_model, register_model) and the client reach one server.
    with using(tracking_uri) as mlflow_client:
        existing = find_version_for_run(mlflow_client, airflow_run_id)
        if existing is not None:
            log.info("reusing version %s registered by an earlier attempt", existing.version)
            return _candidate_from_version(mlflow_client, existing, reused=True)

        experiment_id = ensure_experiment(mlflow_client, experiment_name)
        # Absolute, so the lineage can be read back from any working directory.
        source = snapshot_uri if "://" in snapshot_uri else str(Path(snapshot_uri).resolve())
        version_tags = {
            "airflow_dag_id": dag_id,
            "airflow_run_id": airflow_run_id,
            "data_sha256": data_sha256,
            "data_snapshot_uri": source,
            "data_rows": str(len(frame)),
            "split_rule": split_rule(cfg.holdout_fraction),
            "code_version": code_version,
        }
        finished = mlflow_client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.airflow_run_id = '{airflow_run_id}' and tags.stage = 'train'"
                " and attributes.status = 'FINISHED'"
            ),
            max_results=1,
        )
        if finished:
            # Crash between logging and registering: register what was already logged.
            run = finished[0]
            tags = {**version_tags, "holdout_digest": run.data.tags["holdout_digest"]}
            tags.update({k: run.data.params[k] for k in ("alpha", "l1_ratio")})
            version = _register(run.data.tags["model_uri"], tags)
            return _candidate_from_version(mlflow_client, version, reused=True)

        # An attempt that died mid-logging (server or storage gone) leaves a RUNNING run behind:
        # close it as FAILED so the run list shows one finished training per DAG run.
        for abandoned in mlflow_client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.airflow_run_id = '{airflow_run_id}' and tags.stage = 'train'"
                " and attributes.status = 'RUNNING'"
            ),
        ):
            log.warning("closing run %s abandoned by an earlier attempt", abandoned.info.run_id)
            mlflow_client.set_terminated(abandoned.info.run_id, status="FAILED")

        train, holdout = split_holdout(frame, cfg.holdout_fraction)
        digest = holdout_digest(holdout)
        pipeline, table = fit(train, cfg)
        best = min(table, key=lambda row: (row["rank"], row["alpha"], row["l1_ratio"]))
        metrics = regression_metrics(
            holdout[TARGET], pipeline.predict(holdout.loc[:, list(FEATURES)])
        )

        run_tags = {**version_tags, "stage": "train", "holdout_digest": digest}
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"train {airflow_run_id}", tags=run_tags
        ) as run:
            mlflow.log_params(
                {
                    "alpha": best["alpha"],
                    "l1_ratio": best["l1_ratio"],
                    "seed": cfg.seed,
                    "holdout_fraction": cfg.holdout_fraction,
                    "cv_folds": cfg.cv_folds,
                    "search_rows": table[0]["cv_rows"],
                    "grid_alphas": json.dumps(list(cfg.alphas)),
                    "grid_l1_ratios": json.dumps(list(cfg.l1_ratios)),
                }
            )
            mlflow_client.log_inputs(
                run.info.run_id,
                [
                    dataset_input(frame, "winequality-red", source, data_sha256[:16], "training"),
                    dataset_input(holdout, "holdout", source, digest, "holdout"),
                ],
            )
            # Every candidate's CV score as one metric series (step = grid index), plus the
            # table, and the holdout metrics: one request, not one per grid point.
            mlflow_client.log_batch(
                run.info.run_id,
                metrics=_run_metrics(
                    table,
                    {
                        **metrics,
                        "holdout_rows": float(len(holdout)),
                        "train_rows": float(len(train)),
                    },
                ),
            )
            mlflow.log_table(
                data={k: [r[k] for r in table] for k in table[0]}, artifact_file="cv_results.json"
            )
            with tempfile.TemporaryDirectory() as tmp:
                holdout_path = Path(tmp) / "holdout.csv"
                write_holdout(holdout, holdout_path)
                mlflow.log_artifact(
                    str(holdout_path), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent)
                )
                pipeline_path = save_pipeline(pipeline, Path(tmp))
                model_info = mlflow.pyfunc.log_model(
                    name=MODEL_ARTIFACT_NAME,
                    python_model=WineQualityRegressor(),
                    artifacts={PIPELINE_ARTIFACT: str(pipeline_path)},
                    code_paths=[str(Path(__file__).resolve().parents[1])],
                    signature=model_signature(),
                    input_example=frame.head(3).loc[:, list(FEATURES)].astype("float64"),
                    pip_requirements=serving_requirements(),
                )
            mlflow.set_tag("model_uri", model_info.model_uri)
        tags = {**version_tags, "holdout_digest": digest, "alpha": str(best["alpha"])}
        tags["l1_ratio"] = str(best["l1_ratio"])
        version = _register(model_info.model_uri, tags)
        log.info(
            "registered %s version %s from run %s", MODEL_NAME, version.version, run.info.run_id
        )
        return _candidate_from_version(mlflow_client, version, reused=False)


def train_from_snapshot(
    ingested: IngestResult,
    *,
    tracking_uri: str,
    experiment_name: str,
    alphas: Sequence[float],
    l1_ratios: Sequence[float],
    dag_id: str,
    airflow_run_id: str,
    s3_client: Any | None = None,
) -> Candidate:
    """Train and register a candidate on the ingested snapshot (idempotent per Airflow run).

    Args:
        ingested: The validated snapshot.
        tracking_uri: MLflow tracking server.
        experiment_name: Experiment that holds the pipeline's runs.
        alphas: The grid's ``alpha`` values.
        l1_ratios: The grid's ``l1_ratio`` values.
        dag_id: Airflow DAG id (tag).
        airflow_run_id: Airflow run id (tag, and the idempotency key).
        s3_client: boto3 S3 client for an ``s3://`` snapshot.
    """
    preload("mlflow.pyfunc", "sklearn.pipeline", "sklearn.linear_model", "sklearn.model_selection")
    frame = load_snapshot(ingested.snapshot_uri, ingested.sha256, s3_client=s3_client)
    return train_and_register(
        tracking_uri=tracking_uri,
        experiment_name=experiment_name,
        frame=frame,
        data_sha256=ingested.sha256,
        snapshot_uri=ingested.snapshot_uri,
        dag_id=dag_id,
        airflow_run_id=airflow_run_id,
        cfg=TrainingConfig(
            alphas=tuple(float(a) for a in alphas), l1_ratios=tuple(float(r) for r in l1_ratios)
        ),
        code_version=__version__,
    )
