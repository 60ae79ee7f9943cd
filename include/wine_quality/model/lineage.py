"""What a registered version was trained on, read back from its lineage tags.

Every version records the snapshot it was trained on (``data_snapshot_uri``, ``data_sha256``)
and the rule that kept its holdout apart (``split_rule``). From these the very rows that trained
production are rebuilt, never assumed: drift is measured against them, and the comparison leaves
out any holdout row production was trained on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wine_quality.core.config import MODEL_NAME
from wine_quality.data.holdout import SPLIT_RULE, in_holdout
from wine_quality.data.ingest import load_snapshot

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

# Versions registered before the content-hash rule: a seeded GroupShuffleSplit over the file.
LEGACY_SPLIT_RULE = "group-shuffle-v0"


class LineageError(Exception):
    """A version's training data cannot be found or read back."""


@dataclass(frozen=True)
class TrainingData:
    """Where a version's training rows came from (JSON-able: it goes into the decision)."""

    version: str
    data_sha256: str
    snapshot_uri: str
    split_rule: str
    rows: int


def _snapshot_from_inputs(mlflow_client: MlflowClient, run_id: str) -> str | None:
    """The training dataset's source as logged with ``mlflow.log_input`` (older versions)."""
    run = mlflow_client.get_run(run_id)
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        contexts = {tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context"}
        if "training" not in contexts:
            continue
        try:
            source = json.loads(dataset_input.dataset.source)
        except ValueError:
            return dataset_input.dataset.source or None
        if isinstance(source, dict):
            return source.get("uri") or source.get("path")
    return None


def training_rows(frame: pd.DataFrame, rule: str, *, seed: int) -> pd.DataFrame:
    """The rows of ``frame`` that ``rule`` put on the training side.

    Raises:
        LineageError: The rule is not one this package knows.
    """
    name, _, fraction_text = rule.partition(":")
    fraction = float(fraction_text) if fraction_text else 0.2
    if name == SPLIT_RULE:
        return frame[~in_holdout(frame, fraction)].reset_index(drop=True)
    if name == LEGACY_SPLIT_RULE:
        import pandas as pd
        from sklearn.model_selection import GroupShuffleSplit

        # The old rule exactly: groups were pandas' hash of the parsed rows as they were.
        groups = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        train_idx, _ = next(splitter.split(frame, groups=groups))
        return frame.iloc[train_idx].reset_index(drop=True)
    raise LineageError(f"unknown split rule {rule!r}")


def version_training_data(
    mlflow_client: MlflowClient,
    version: str,
    *,
    s3_client: Any | None = None,
    loaded: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[TrainingData, pd.DataFrame]:
    """The rows ``version`` of the model was trained on, rebuilt from its lineage.

    Args:
        mlflow_client: Client of the tracking server that holds the registry.
        version: The model version.
        s3_client: boto3 S3 client for an ``s3://`` snapshot.
        loaded: Frames already parsed, by sha256: a snapshot the caller holds is not read
            again (a rerun on unchanged data trains on the very same snapshot).

    Returns:
        Where they came from, and the rows themselves.

    Raises:
        LineageError: A lineage tag is missing, or the snapshot cannot be read or has changed.
    """
    from wine_quality.core.errors import DataSourceError

    model_version = mlflow_client.get_model_version(MODEL_NAME, version)
    tags = model_version.tags
    sha256 = tags.get("data_sha256")
    snapshot_uri = tags.get("data_snapshot_uri") or _snapshot_from_inputs(
        mlflow_client, model_version.run_id
    )
    if not sha256 or not snapshot_uri:
        raise LineageError(
            f"version {version} does not record the data it was trained on"
            f" (data_sha256={sha256!r}, snapshot={snapshot_uri!r})"
        )
    params = mlflow_client.get_run(model_version.run_id).data.params
    rule = tags.get("split_rule") or f"{LEGACY_SPLIT_RULE}:{params.get('holdout_fraction', 0.2)}"
    try:
        frame = (loaded or {}).get(sha256)
        if frame is None:
            frame = load_snapshot(snapshot_uri, sha256, s3_client=s3_client)
    except (DataSourceError, FileNotFoundError) as exc:
        # Gone or changed for good; a network error (ConnectionError) propagates and is retried.
        raise LineageError(f"version {version}'s training snapshot: {exc}") from exc
    rows = training_rows(frame, rule, seed=int(params.get("seed", 42)))
    log.info("version %s was trained on %d rows of %s (%s)", version, len(rows), snapshot_uri, rule)
    return TrainingData(version, sha256, snapshot_uri, rule, len(rows)), rows
