"""The validate step: run the expectation suite on a run's snapshot and keep the result in MLflow.

The suite and its report are :mod:`wine_quality.validation`; this module records each
validation as an MLflow run (tags, counts, the full result as JSON and the same as a page to
read), passed or not, so a refused snapshot can be inspected later.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wine_quality.core.tracking import ensure_experiment, using
from wine_quality.data.ingest import IngestResult, load_snapshot
from wine_quality.validation import render_html, validate_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationRun:
    """A snapshot that passed validation, and the MLflow run holding the full result."""

    rows: int
    expectations: int
    sha256: str
    validation_run_id: str


def validate_snapshot(
    ingested: IngestResult,
    *,
    tracking_uri: str,
    experiment_name: str,
    airflow_run_id: str,
    min_rows: int,
    s3_client: Any | None = None,
) -> ValidationRun:
    """Run the expectation suite on the snapshot; keep the full result in MLflow either way.

    The run holds ``validation/validation_result.json`` (everything GX said) and
    ``validation/validation_result.html`` (verdict and every expectation, failures first).

    Args:
        ingested: The snapshot to validate.
        tracking_uri: MLflow tracking server.
        experiment_name: Experiment for the validation run.
        airflow_run_id: Tag of the validation run.
        min_rows: Fewer rows than this fail validation.
        s3_client: boto3 S3 client for an ``s3://`` snapshot.

    Raises:
        DataValidationError: Any expectation failed (after the result is stored).
    """
    import mlflow

    frame = load_snapshot(ingested.snapshot_uri, ingested.sha256, s3_client=s3_client)
    report = validate_frame(frame, min_rows=min_rows)
    tags = {
        "stage": "validate",
        "airflow_run_id": airflow_run_id,
        "data_sha256": ingested.sha256,
        "validation": "passed" if report.success else "failed",
    }
    with using(tracking_uri) as mlflow_client:
        experiment_id = ensure_experiment(mlflow_client, experiment_name)
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"validate {airflow_run_id}", tags=tags
        ) as run:
            mlflow.log_metrics(
                {"expectations": float(report.evaluated), "failed": float(len(report.failed))}
            )
            with tempfile.TemporaryDirectory() as tmp:
                page = render_html(report, data_sha256=ingested.sha256, rows=len(frame))
                for name, text in (
                    ("validation_result.json", report.to_json()),
                    ("validation_result.html", page),
                ):
                    path = Path(tmp) / name
                    path.write_text(text, encoding="utf-8")
                    mlflow.log_artifact(str(path), artifact_path="validation")
            if not report.success:
                mlflow.end_run(status="FAILED")
    log.info(
        "validation %s: %d expectations, %d failed (run %s)",
        tags["validation"],
        report.evaluated,
        len(report.failed),
        run.info.run_id,
    )
    report.raise_for_failure()
    return ValidationRun(
        rows=len(frame),
        expectations=report.evaluated,
        sha256=ingested.sha256,
        validation_run_id=run.info.run_id,
    )
