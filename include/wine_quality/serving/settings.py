"""The model server's settings: the environment read once into a frozen ``ServerSettings``.

This module owns every ``WINE_MODEL_SERVER_*`` variable and ``WINE_MODEL_URI``, their defaults and
their checks, so a bad value stops the server at start with a message naming the variable. The
tracking URI and the reload token come from :class:`wine_quality.core.config.Settings`, like
every other process's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from wine_quality.core.config import TRACKING_URI_DEFAULT, Settings, alias_uri

DEFAULT_MODEL_URI = alias_uri()
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_RETRY_SECONDS = 5.0
DEFAULT_MAX_ROWS = 10_000
# Under the deploy step's 60-120 s wait for the reload answer, over a model load or two.
DEFAULT_CONVERGE_SECONDS = 30.0

_Number = TypeVar("_Number", int, float)


def parse_model_uri(model_uri: str) -> tuple[str, str]:
    """Split ``models:/<name>@<alias>`` into name and alias.

    The server follows an alias, never a fixed version or a stage, so that a reload always has a
    single, current answer to "what should be served".

    Raises:
        ValueError: ``model_uri`` is not of that form.
    """
    prefix = "models:/"
    name, sep, alias = model_uri.removeprefix(prefix).partition("@")
    if not model_uri.startswith(prefix) or not (sep and name and alias) or "/" in name + alias:
        raise ValueError(f"WINE_MODEL_URI must look like models:/<name>@<alias>, got {model_uri!r}")
    return name, alias


def _env_number(env: Mapping[str, str], key: str, default: _Number, kind: type[_Number]) -> _Number:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{key} must be a {kind.__name__}, got {raw!r}") from None


@dataclass(frozen=True)
class ServerSettings:
    """What the server serves and how.

    Attributes:
        tracking_uri: The MLflow tracking server holding the registry (``MLFLOW_TRACKING_URI``).
        model_uri: The alias to follow, ``models:/<name>@<alias>`` (``WINE_MODEL_URI``).
        token: Bearer token for ``POST /admin/reload`` (``WINE_MODEL_SERVER_TOKEN``); empty
            disables reloads.
        max_body_bytes: Largest ``/invocations`` body accepted
            (``WINE_MODEL_SERVER_MAX_BODY_BYTES``).
        poll_seconds: Re-resolve the alias this often and follow it; 0 means only on reload
            (``WINE_MODEL_SERVER_POLL_SECONDS``).
        retry_seconds: While nothing is served, try to load this often
            (``WINE_MODEL_SERVER_RETRY_SECONDS``).
        max_rows: Most rows one JSON request may score (``WINE_MODEL_SERVER_MAX_ROWS``).
        converge_seconds: With several workers, how long a reload waits for every worker to
            serve the new version before it answers 504 (``WINE_MODEL_SERVER_CONVERGE_SECONDS``).
    """

    tracking_uri: str = TRACKING_URI_DEFAULT
    model_uri: str = DEFAULT_MODEL_URI
    token: str = field(default="", repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    poll_seconds: float = 0.0
    retry_seconds: float = DEFAULT_RETRY_SECONDS
    max_rows: int = DEFAULT_MAX_ROWS
    converge_seconds: float = DEFAULT_CONVERGE_SECONDS

    def __post_init__(self) -> None:
        parse_model_uri(self.model_uri)
        if self.max_body_bytes <= 0:
            raise ValueError("WINE_MODEL_SERVER_MAX_BODY_BYTES must be positive")
        if self.poll_seconds < 0:
            raise ValueError("WINE_MODEL_SERVER_POLL_SECONDS must be 0 (off) or positive")
        if self.retry_seconds <= 0:
            raise ValueError("WINE_MODEL_SERVER_RETRY_SECONDS must be positive")
        if self.max_rows <= 0:
            raise ValueError("WINE_MODEL_SERVER_MAX_ROWS must be positive")
        if self.converge_seconds <= 0:
            raise ValueError("WINE_MODEL_SERVER_CONVERGE_SECONDS must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        """Build settings from ``env`` (default: ``os.environ``).

        Raises:
            ValueError: A variable is set to something unusable.
        """
        env = dict(os.environ if env is None else env)
        base = Settings.from_env(env)
        return cls(
            tracking_uri=base.tracking_uri,
            model_uri=env.get("WINE_MODEL_URI") or DEFAULT_MODEL_URI,
            token=base.model_server_token.strip(),
            max_body_bytes=_env_number(
                env, "WINE_MODEL_SERVER_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, int
            ),
            poll_seconds=_env_number(env, "WINE_MODEL_SERVER_POLL_SECONDS", 0.0, float),
            retry_seconds=_env_number(
                env, "WINE_MODEL_SERVER_RETRY_SECONDS", DEFAULT_RETRY_SECONDS, float
            ),
            max_rows=_env_number(env, "WINE_MODEL_SERVER_MAX_ROWS", DEFAULT_MAX_ROWS, int),
            converge_seconds=_env_number(
                env, "WINE_MODEL_SERVER_CONVERGE_SECONDS", DEFAULT_CONVERGE_SECONDS, float
            ),
        )
