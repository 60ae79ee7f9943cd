"""Promotion and rollback on the MLflow model registry.

``production`` is moved in a single ``set_registered_model_alias`` call (never delete-then-set,
so it always names some version), after ``previous_production`` has been pointed at the version
it replaces. The deprecated ``Production`` stage follows the alias so the runbook's
``models:/ElasticNetWineModel/Production`` URI keeps resolving.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wine_quality.core.config import LEGACY_STAGE, MODEL_NAME, PREVIOUS_ALIAS, PRODUCTION_ALIAS
from wine_quality.core.errors import PromotionConflictError
from wine_quality.core.tracking import client, is_not_found

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

# A registered model used as a mutex: creating a name that exists fails atomically in the
# registry's database, which is the only compare-and-set MLflow offers. Aliases have none.
LOCK_NAME = f"{MODEL_NAME}.promotion-lock"
LOCK_TTL_SECONDS = 300.0
LOCK_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Promotion:
    """The version production names after a promotion, and the one it replaced."""

    version: str
    previous_version: str | None
    already_promoted: bool


@dataclass(frozen=True)
class AliasRollback:
    """Whether a rollback moved ``production``, and what it names now (None: nothing)."""

    rolled_back: bool
    production: str | None


@contextlib.contextmanager
def registry_lock(
    mlflow_client: MlflowClient,
    owner: str,
    *,
    wait_seconds: float = LOCK_WAIT_SECONDS,
    ttl_seconds: float = LOCK_TTL_SECONDS,
) -> Iterator[None]:
    """Hold the promotion lock while moving aliases, so two runs never interleave.

    A lock older than ``ttl_seconds`` belongs to a crashed holder and is broken.

    Raises:
        TimeoutError: The lock stayed held for ``wait_seconds`` (transient: retried).
    """
    from mlflow.exceptions import MlflowException

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            mlflow_client.create_registered_model(
                LOCK_NAME,
                tags={"owner": owner},
                description="Held while wine_retraining moves the production alias.",
            )
            break
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        with contextlib.suppress(MlflowException):
            held = mlflow_client.get_registered_model(LOCK_NAME)
            age = time.time() - held.creation_timestamp / 1000
            if age > ttl_seconds:
                log.warning("breaking a stale promotion lock held by %s", held.tags.get("owner"))
                mlflow_client.delete_registered_model(LOCK_NAME)
                continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"promotion lock {LOCK_NAME} still held after {wait_seconds:g} s")
        time.sleep(0.2)
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            mlflow_client.delete_registered_model(LOCK_NAME)


def alias_version(mlflow_client: MlflowClient, alias: str) -> str | None:
    """The version ``alias`` names, or None if the alias is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow_client.get_model_version_by_alias(MODEL_NAME, alias).version)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def _sync_stage(mlflow_client: MlflowClient, version: str) -> None:
    # Stages are deprecated in MLflow 3 but still resolve models:/<name>/Production for users of
    # the runbook; archive_existing_versions keeps exactly one version in the stage.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mlflow_client.transition_model_version_stage(
            MODEL_NAME, version, LEGACY_STAGE, archive_existing_versions=True
        )


def promote(
    *,
    tracking_uri: str,
    version: str,
    expected_production: str | None,
    airflow_run_id: str,
    forced: bool = False,
) -> Promotion:
    """Make ``version`` production, if production is still what the comparison saw.

    Args:
        tracking_uri: MLflow tracking server.
        version: The candidate version to promote.
        expected_production: The production version the comparison was made against.
        airflow_run_id: Recorded on the promoted version.
        forced: Recorded on the version when the rule was overridden.

    Returns:
        The promoted version, the one it replaced, and whether a retry found it done already.

    Raises:
        PromotionConflictError: Production moved since the comparison (another run promoted):
            this run's comparison is stale, so it must not overwrite that promotion.
    """
    mlflow_client = client(tracking_uri)
    with registry_lock(mlflow_client, owner=airflow_run_id):
        current = alias_version(mlflow_client, PRODUCTION_ALIAS)
        if current == version:
            # A retry after a successful promotion: make sure the stage caught up, change nothing.
            _sync_stage(mlflow_client, version)
            previous = alias_version(mlflow_client, PREVIOUS_ALIAS)
            return Promotion(version=version, previous_version=previous, already_promoted=True)
        if current != expected_production:
            raise PromotionConflictError(
                f"production is version {current} but this run compared against version"
                f" {expected_production}: another run promoted in between; not overwriting it"
            )
        if current is not None:
            mlflow_client.set_registered_model_alias(MODEL_NAME, PREVIOUS_ALIAS, current)
        mlflow_client.set_registered_model_alias(MODEL_NAME, PRODUCTION_ALIAS, version)
        _sync_stage(mlflow_client, version)
    mlflow_client.set_model_version_tag(MODEL_NAME, version, "promoted_by_run", airflow_run_id)
    if forced:
        mlflow_client.set_model_version_tag(MODEL_NAME, version, "forced_promotion", "true")
    log.info("production: version %s -> %s", current, version)
    return Promotion(version=version, previous_version=current, already_promoted=False)


def rollback(*, tracking_uri: str, failed_version: str, reason: str) -> AliasRollback:
    """Take ``failed_version`` out of production and restore ``previous_production``.

    Idempotent: if production no longer names ``failed_version`` nothing is moved. With no
    previous version to return to, the alias is removed rather than left on a broken model.

    Returns:
        Whether anything moved, and what production is now.
    """
    mlflow_client = client(tracking_uri)
    mlflow_client.set_model_version_tag(
        MODEL_NAME, failed_version, "rollback_reason", reason[:4900]
    )
    with registry_lock(mlflow_client, owner=f"rollback of {failed_version}"):
        current = alias_version(mlflow_client, PRODUCTION_ALIAS)
        if current != failed_version:
            log.info("production is %s, not %s: nothing to roll back", current, failed_version)
            return AliasRollback(rolled_back=False, production=current)
        previous = alias_version(mlflow_client, PREVIOUS_ALIAS)
        if previous is None or previous == failed_version:
            mlflow_client.delete_registered_model_alias(MODEL_NAME, PRODUCTION_ALIAS)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                mlflow_client.transition_model_version_stage(MODEL_NAME, failed_version, "Archived")
            log.warning("rolled back version %s; no previous version to restore", failed_version)
            return AliasRollback(rolled_back=True, production=None)
        mlflow_client.set_registered_model_alias(MODEL_NAME, PRODUCTION_ALIAS, previous)
        _sync_stage(mlflow_client, previous)
        log.warning("rolled back production from version %s to %s", failed_version, previous)
        return AliasRollback(rolled_back=True, production=previous)
