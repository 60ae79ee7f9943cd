"""Make the deployed model server switch to the production version, and wait until it does."""

from __future__ import annotations

import time
from typing import Any

from wine_quality.errors import DeploymentError


def served_model(server_url: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """What the model server says it serves (``GET /served-model``)."""
    import requests

    response = requests.get(f"{server_url}/served-model", timeout=timeout)
    response.raise_for_status()
    return response.json()


def deploy(
    *,
    server_url: str,
    token: str,
    expected_version: str | None,
    wait_seconds: float = 120.0,
    poll_seconds: float = 0.5,
) -> dict[str, Any]:
    """Ask the server to reload the production alias and wait until it serves ``expected_version``.

    Args:
        server_url: Base URL of the model server.
        token: Bearer token for ``POST /admin/reload``.
        expected_version: The version production names now (None: nothing should be served).
        wait_seconds: How long to wait for the switch.
        poll_seconds: Interval between checks of ``/served-model``.

    Returns:
        The server's ``/served-model`` document once it serves the expected version.

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
        # 502 = the server could not load the model; it keeps serving the old one. Retry.
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
        served = state.get("version")
        if (str(served) if served is not None else None) == expected_version:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"model server still serves version {served} after {wait_seconds:g} s;"
                f" expected {expected_version}"
            )
        time.sleep(poll_seconds)
