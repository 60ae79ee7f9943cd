"""Which data a run reads, and the data asset whose updates start a run.

The DAG is scheduled on the night's cron *or* an update of the data asset (the incoming object in
the data bucket). Someone who lands new data posts an asset event, optionally naming the exact
object in its extra (``{"data_uri": "s3://wine-data/incoming/2026-11-20.csv"}``); that run then
reads it. Standard library only: the DAG file calls :func:`data_asset_uri` when it is parsed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from wine_quality.core.config import ASSET_EVENT_DATA_URI_KEY, DEFAULT_DATA_URI

log = logging.getLogger(__name__)


def data_asset_uri(env: Mapping[str, str]) -> str:
    """The URI of the data asset: ``WINE_DATA_ASSET_URI``, else the data source as a URI.

    The data source is ``WINE_DATA_URI`` (default: the public UCI file); a local path becomes
    ``file://`` and its absolute path (made absolute without touching the disk: this runs when
    the DAG is parsed), ``s3://`` and ``https://`` stay as they are.
    """
    explicit = env.get("WINE_DATA_ASSET_URI")
    if explicit:
        return explicit
    source = env.get("WINE_DATA_URI") or DEFAULT_DATA_URI
    if "://" in source:
        return source
    return Path(os.path.abspath(source)).as_uri()


@dataclass(frozen=True)
class DataChoice:
    """The data a run reads and where that choice came from, in words for the log."""

    uri: str
    origin: str


def choose_data_uri(
    param: str | None,
    events: Iterable[tuple[datetime, Mapping[str, Any] | None]],
    environment: str,
) -> DataChoice:
    """Pick the data a run reads: its ``data_uri`` setting, else the asset event's, else the
    environment's.

    Args:
        param: The run's ``data_uri`` Param (None or empty: not set).
        events: The asset events that started the run, as ``(timestamp, extra)``; the newest
            whose extra names a ``data_uri`` wins (several uploads may land before one run).
        environment: ``WINE_DATA_URI`` (or its default).

    Returns:
        The URI and where it came from (also logged).
    """
    if param:
        choice = DataChoice(param, "the run's data_uri setting")
    elif named := [
        (stamp, extra[ASSET_EVENT_DATA_URI_KEY])
        for stamp, extra in events
        if extra and isinstance(extra.get(ASSET_EVENT_DATA_URI_KEY), str)
        and extra[ASSET_EVENT_DATA_URI_KEY]
    ]:  # fmt: skip
        stamp, uri = max(named, key=lambda item: item[0])
        choice = DataChoice(uri, f"the asset event of {stamp.isoformat()}")
    else:
        choice = DataChoice(environment, "the environment (WINE_DATA_URI or its default)")
    log.info("data: %s, from %s", choice.uri, choice.origin)
    return choice
