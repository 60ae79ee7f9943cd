"""Races on the registry, against a real MLflow server: concurrent promotions, the lock itself."""

from __future__ import annotations

import threading

import pytest

from tests.reliability import record
from wine_quality.core import config
from wine_quality.core.errors import PromotionConflictError
from wine_quality.core.tracking import client
from wine_quality.model.search import TrainingConfig
from wine_quality.model.train import train_and_register
from wine_quality.release.registry import (
    LOCK_NAME,
    Promotion,
    alias_version,
    promote,
    registry_lock,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GRID = TrainingConfig(alphas=(0.1,), l1_ratios=(0.5,), cv_folds=2)


@pytest.fixture(scope="module")
def registered(stack, wine_frame):
    """Six real versions (two per round), each of which passed training's gates."""
    versions = []
    for index in range(6):
        candidate = train_and_register(
            tracking_uri=stack.tracking_uri,
            experiment_name="race-tests",
            frame=wine_frame,
            data_sha256="0" * 64,
            snapshot_uri="/dev/null",
            dag_id="wine_retraining",
            airflow_run_id=f"race-{index}",
            cfg=GRID,
            code_version="test",
        )
        versions.append(candidate.version)
    return versions


def race(tracking_uri: str, contenders: list[str], expected: str | None) -> dict[str, object]:
    """Start every promotion at the same instant; return each one's result or exception."""
    barrier = threading.Barrier(len(contenders))
    outcome: dict[str, object] = {}

    def attempt(version: str) -> None:
        barrier.wait()
        try:
            outcome[version] = promote(
                tracking_uri=tracking_uri,
                version=version,
                expected_production=expected,
                airflow_run_id=f"race-promote-{version}",
            )
        except Exception as exc:  # noqa: BLE001 - the test inspects what each contender got
            outcome[version] = exc

    threads = [threading.Thread(target=attempt, args=(v,)) for v in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcome


def test_concurrent_promotions_exactly_one_wins(stack, registered):
    mlflow_client = client(stack.tracking_uri)
    production = alias_version(mlflow_client, config.PRODUCTION_ALIAS)
    for round_index in range(3):
        contenders = registered[2 * round_index : 2 * round_index + 2]
        outcome = race(stack.tracking_uri, contenders, expected=production)
        winners = [v for v, result in outcome.items() if isinstance(result, Promotion)]
        losers = [v for v, result in outcome.items() if isinstance(result, Exception)]
        assert len(winners) == 1, outcome
        assert len(losers) == 1, outcome
        refusal = outcome[losers[0]]
        assert isinstance(refusal, PromotionConflictError), refusal
        assert "another run promoted in between" in str(refusal)
        now = alias_version(mlflow_client, config.PRODUCTION_ALIAS)
        assert now == winners[0]
        assert alias_version(mlflow_client, config.PREVIOUS_ALIAS) == production
        production = now
    # The lock is released, not left for the next run to wait on.
    assert not [m for m in mlflow_client.search_registered_models() if m.name == LOCK_NAME]
    record(
        "races", "concurrent-promotions", "two runs promote at the same instant (3 rounds)",
        "one promotes; the other refuses: production moved since its comparison",
        "production names the winner, previous_production the version before; lock released",
        rounds=3,
    )  # fmt: skip


def test_a_held_lock_makes_others_wait_and_then_time_out(stack):
    mlflow_client = client(stack.tracking_uri)
    with (
        registry_lock(mlflow_client, "holder"),
        pytest.raises(TimeoutError, match="still held"),
        registry_lock(mlflow_client, "waiter", wait_seconds=1.0),
    ):
        pass
    with registry_lock(mlflow_client, "after"):
        pass


def test_a_stale_lock_is_broken(stack):
    mlflow_client = client(stack.tracking_uri)
    mlflow_client.create_registered_model(LOCK_NAME, tags={"owner": "crashed run"})
    with registry_lock(mlflow_client, "next run", ttl_seconds=0.0, wait_seconds=5.0):
        held = mlflow_client.get_registered_model(LOCK_NAME)
        assert held.tags["owner"] == "next run"
