"""Ingest: fetch the raw CSV from its source, keep an immutable snapshot, parse it strictly.

Sources are a local path (or ``file://``), ``http(s)://`` or ``s3://``. The snapshot of each run's
input is written once under ``<staging>/raw/<snapshot key>/`` and never overwritten, so a retried
or re-run task reads exactly the bytes the first attempt saw, and every model can be traced to
them by sha256.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from wine_quality.config import COLUMNS, CSV_SEPARATOR
from wine_quality.errors import DataSourceError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SNAPSHOT_FILENAME = "winequality-red.csv"
_MAX_SOURCE_BYTES = 50 * 1024 * 1024  # the real file is 84 kB; anything huge is not our data


@dataclass(frozen=True)
class IngestResult:
    """What downstream tasks need to find and trust the snapshot (small enough for XCom)."""

    source_uri: str
    snapshot_uri: str
    sha256: str
    rows: int
    size_bytes: int
    reused: bool


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _s3(client: Any | None) -> Any:
    if client is not None:
        return client
    import boto3

    # Outside Airflow (scripts, tests) boto3 reads keys and the endpoint (AWS_ENDPOINT_URL_S3,
    # for MinIO or moto) from its usual environment variables and config files.
    return boto3.client("s3")


def read_bytes(uri: str, *, timeout: float = 30.0, s3_client: Any | None = None) -> bytes:
    """Read the whole object at ``uri``.

    Args:
        uri: Local path, ``file://``, ``http(s)://`` or ``s3://`` URI.
        timeout: Seconds before an HTTP read is abandoned.
        s3_client: A boto3 S3 client to use for ``s3://`` (default: one from the environment).

    Raises:
        DataSourceError: The source does not exist, is empty, too large or unsupported.
        ConnectionError: A network source did not answer (transient: worth a retry).
    """
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        import requests

        try:
            response = requests.get(uri, timeout=timeout)
        except requests.Timeout as exc:
            raise ConnectionError(f"data source {uri} did not answer within {timeout:g} s") from exc
        except requests.ConnectionError as exc:
            raise ConnectionError(f"cannot reach data source {uri}: {exc}") from exc
        if response.status_code == 404:
            raise DataSourceError(f"data source {uri} does not exist (HTTP 404)")
        if response.status_code >= 500:
            raise ConnectionError(f"data source {uri} answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise DataSourceError(f"data source {uri} answered HTTP {response.status_code}")
        data = response.content
    elif scheme == "s3":
        bucket, key = _split_s3(uri)
        client = _s3(s3_client)
        try:
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey as exc:
            raise DataSourceError(f"data source {uri} does not exist") from exc
        except client.exceptions.NoSuchBucket as exc:
            raise DataSourceError(f"bucket of data source {uri} does not exist") from exc
    elif scheme in ("", "file"):
        path = Path(urlparse(uri).path if scheme == "file" else uri).expanduser()
        if not path.is_file():
            raise DataSourceError(f"data source {uri} does not exist or is not a file")
        data = path.read_bytes()
    else:
        raise DataSourceError(f"unsupported data source scheme {scheme!r} in {uri}")
    if len(data) > _MAX_SOURCE_BYTES:
        raise DataSourceError(f"data source {uri} is {len(data)} bytes: too large for this data")
    return data


def write_once(uri: str, data: bytes, *, s3_client: Any | None = None) -> bool:
    """Write ``data`` to ``uri`` unless an object is already there.

    Returns:
        True if written, False if an object already existed (it is left untouched).
    """
    if uri.startswith("s3://"):
        bucket, key = _split_s3(uri)
        client = _s3(s3_client)
        try:
            # IfNoneMatch makes the create conditional on stores that support it (S3, MinIO).
            client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise
        return True
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("xb") as handle:
            handle.write(data)
    except FileExistsError:
        return False
    return True


def exists(uri: str, *, s3_client: Any | None = None) -> bool:
    """Whether an object exists at ``uri``."""
    if uri.startswith("s3://"):
        bucket, key = _split_s3(uri)
        client = _s3(s3_client)
        try:
            client.head_object(Bucket=bucket, Key=key)
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
    return Path(uri).is_file()


def snapshot_uri(staging_uri: str, snapshot_key: str) -> str:
    """Where the raw snapshot for ``snapshot_key`` (e.g. the logical date) lives."""
    safe_key = re.sub(r"[^A-Za-z0-9._=-]+", "_", snapshot_key).strip("_") or "manual"
    return f"{staging_uri.rstrip('/')}/raw/{safe_key}/{SNAPSHOT_FILENAME}"


def decode_csv(data: bytes, *, source: str = "data") -> str:
    """Decode CSV bytes as UTF-8, dropping a byte-order mark.

    Raises:
        DataSourceError: The bytes are not UTF-8 (e.g. Latin-1): refuse rather than misread.
    """
    try:
        # utf-8-sig drops a BOM, so it never becomes part of the first column's name.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataSourceError(
            f"{source} is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 4]!r});"
            " re-encode the file as UTF-8"
        ) from exc


def parse_csv(data: bytes, *, source: str = "data") -> pd.DataFrame:
    """Parse the wine CSV strictly: ``;``-separated, the 12 known columns, nothing silently fixed.

    Column names and cell values are kept as found; the expectation suite judges them. Only
    problems that make the file unreadable as this data set are raised here.

    Raises:
        DataSourceError: Empty file, wrong separator, no data rows or a malformed line.
    """
    import pandas as pd

    text = decode_csv(data, source=source)
    if not text.strip():
        raise DataSourceError(f"{source} is empty")
    header = text.splitlines()[0]
    if CSV_SEPARATOR not in header and "," in header:
        raise DataSourceError(
            f"{source} looks comma-separated; the wine data uses '{CSV_SEPARATOR}' as separator"
        )
    try:
        frame = pd.read_csv(io.StringIO(text), sep=CSV_SEPARATOR, on_bad_lines="error")
    except pd.errors.ParserError as exc:
        raise DataSourceError(f"{source} has a malformed line: {exc}") from exc
    frame.columns = [str(column).strip() for column in frame.columns]
    if frame.empty:
        raise DataSourceError(f"{source} has a header but no data rows")
    # A truncated last line parses as a row with trailing NaNs; name it rather than pass it on.
    last = frame.iloc[-1]
    if len(frame.columns) == len(COLUMNS) and last.isna().any() and not text.endswith("\n"):
        raise DataSourceError(
            f"{source} ends in a truncated line (row {len(frame)} has empty cells"
            f" {list(last[last.isna()].index)} and no final newline)"
        )
    return frame


def ingest(
    source_uri: str,
    staging_uri: str,
    snapshot_key: str,
    *,
    timeout: float = 30.0,
    s3_client: Any | None = None,
) -> IngestResult:
    """Snapshot the source once per ``snapshot_key`` and report its identity.

    A re-run with the same key reuses the existing snapshot instead of fetching again, so the
    bytes a run trains on never change under it.

    Args:
        source_uri: Where the raw CSV comes from.
        staging_uri: Local folder or ``s3://bucket/prefix`` for immutable snapshots.
        snapshot_key: Identifies the run's input, normally the logical date.
        timeout: Seconds allowed for an HTTP source.
        s3_client: boto3 S3 client for ``s3://`` URIs (default: from the environment).

    Raises:
        DataSourceError: The source is missing or not parseable as the wine CSV.
    """
    target = snapshot_uri(staging_uri, snapshot_key)
    reused = exists(target, s3_client=s3_client)
    if reused:
        data = read_bytes(target, s3_client=s3_client)
    else:
        data = read_bytes(source_uri, timeout=timeout, s3_client=s3_client)
        parse_csv(data, source=source_uri)  # refuse unreadable data before keeping it
        if not write_once(target, data, s3_client=s3_client):
            # Another attempt won the race; trust what it stored, not what we fetched.
            data = read_bytes(target, s3_client=s3_client)
            reused = True
    frame = parse_csv(data, source=target)
    result = IngestResult(
        source_uri=source_uri,
        snapshot_uri=target,
        sha256=sha256_hex(data),
        rows=len(frame),
        size_bytes=len(data),
        reused=reused,
    )
    log.info(
        "ingested %s rows (sha256 %s) from %s into %s%s",
        result.rows,
        result.sha256,
        result.source_uri,
        result.snapshot_uri,
        " (reused snapshot)" if result.reused else "",
    )
    return result


def load_snapshot(
    snapshot_uri: str, expected_sha256: str, *, s3_client: Any | None = None
) -> pd.DataFrame:
    """Read a snapshot and check it is the one ingest recorded.

    Raises:
        DataSourceError: The snapshot changed since ingest (sha256 differs).
    """
    data = read_bytes(snapshot_uri, s3_client=s3_client)
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise DataSourceError(
            f"snapshot {snapshot_uri} changed since ingest: sha256 {actual} != {expected_sha256}"
        )
    return parse_csv(data, source=snapshot_uri)
