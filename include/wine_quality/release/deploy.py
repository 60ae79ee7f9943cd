"""Make the deployed model server switch to the production version, and wait until it does.

Also the whole of a rollback: the registry moves ``production`` back, then the server is told
to serve it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from wine_quality.core.errors import DeploymentError
from wine_quality.core.handoff import from_xcom
from wine_quality.release.registry import rollback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    """The model server's ``/served-model`` document: what it serves (version None: nothing)."""

    name: str
    version: str | None
    model_uri: str | None
    run_id: str | None
    loaded_at: str | None
    alias: str
    reason: str | None = None


@dataclass(frozen=True)
class Rollback:
    """What a rollback did in the registry, and what the model server serves afterwards."""

    rolled_back: bool
    production: str | None
    served_version: str | None
    redeploy_error: str | None = None


def served_model(server_url: str, *, timeout: float = 5.0) -> Deployment:
    """What the model server says it serves (``GET /served-model``)."""
    import requests

    response = requests.get(f"{server_url}/served-model", timeout=timeout)
    response.raise_for_status()
    return from_xcom(Deployment, response.json())


def deploy(
    *,
    server_url: str,
    token: str,
    expected_version: str | None,
    wait_seconds: float = 120.0,
    poll_seconds: float = 0.5,
) -> Deployment:
    """Ask the server to reload the production alias and wait until it serves ``expected_version``.

    Args:
        server_url: Base URL of the model server.
        token: Bearer token for ``POST /admin/reload``.
        expected_version: The version production names now (None: nothing should be served).
        wait_seconds: How long to wait for the switch.
        poll_seconds: Interval between checks of ``/served-model``.

    Returns:
        What the server reports once it serves the expected version.

    Raises:
        DeploymentError: The server refused the reload (bad token, disabled, conflict).
        ConnectionError / requests errors: The server is unreachable (transient: retried).
        TimeoutError: The server did not switch in time.
    """
    import requests

    if not token:
        raise DeploymentError(
            "WINE_MODEL_SERVER_TOKEN is not set: the model server cannot be told to reload"
        )
    response = requests.post(
        f"{server_url}/admin/reload",
        headers={"Authorization": f"Bearer {token}"},
        json={"version": expected_version} if expected_version else {},
        timeout=wait_seconds,
    )
    if response.status_code in (401, 403):
        raise DeploymentError(
            f"model server refused the reload ({response.status_code}): check that"
            " WINE_MODEL_SERVER_TOKEN matches the server's"
        )
    if response.status_code == 409:
        raise DeploymentError(f"model server reports a conflict: {response.text[:300]}")
    if response.status_code >= 500:
        # 502 = the server could not load the model; it keeps serving the old one. 504 = some of
        # its workers did not switch in time (named in the text). Retry either.
        raise ConnectionError(
            f"model server reload failed ({response.status_code}): {response.text[:300]}"
        )
    if response.status_code >= 400:
        raise DeploymentError(
            f"model server rejected the reload: {response.status_code} {response.text[:300]}"
        )
    deadline = time.monotonic() + wait_seconds
    while True:
        state = served_model(server_url)
        served = state.version
        if (str(served) if served is not None else None) == expected_version:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"model server still serves version {served} after {wait_seconds:g} s;"
                f" expected {expected_version}"
            )
        time.sleep(poll_seconds)


def rollback_and_redeploy(
    *, tracking_uri: str, server_url: str, token: str, failed_version: str, reason: str
) -> Rollback:
    """Restore ``previous_production`` if ``failed_version`` is production, then redeploy.

    The registry is the source of truth: if the model server is down it loads production when
    it comes back, so a failed redeploy is reported but does not undo the rollback.
    """
    moved = rollback(tracking_uri=tracking_uri, failed_version=failed_version, reason=reason)
    try:
        served = deploy(
            server_url=server_url, token=token, expected_version=moved.production, wait_seconds=60
        )
    except Exception as exc:  # noqa: BLE001 - reported; the registry already holds the truth
        log.warning("model server not redeployed after rollback: %s", exc)
        return Rollback(
            rolled_back=moved.rolled_back,
            production=moved.production,
            served_version=None,
            redeploy_error=str(exc)[:300],
        )
    return Rollback(
        rolled_back=moved.rolled_back, production=moved.production, served_version=served.version
    )
