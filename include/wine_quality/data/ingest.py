"""Ingest: fetch the raw CSV from its source, keep an immutable snapshot, parse it strictly.

Sources are a local path (or ``file://``), ``http(s)://`` or ``s3://``. The snapshot of each run's
input is written once under ``<staging>/raw/<snapshot key>/`` and never overwritten, so a retried
or re-run task reads exactly the bytes the first attempt saw, and every model can be traced to
them by sha256.

Data of any size up to ``WINE_MAX_SOURCE_MB`` goes through in chunks: the source is streamed to
the snapshot while its sha256 is computed and its UTF-8 checked, and pyarrow's CSV reader parses
the file into typed columns. No step holds the raw bytes, or their text, in memory whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlparse

from wine_quality.core.errors import DataSourceError
from wine_quality.data.parse import Scan, count_rows, read_csv_file, too_large
from wine_quality.data.storage import (
    CHUNK_BYTES,
    exists,
    publish_once,
    s3_client_or_default,
    split_s3,
    staged,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SNAPSHOT_FILENAME = "winequality-red.csv"


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


def _default_max_bytes() -> int:
    from wine_quality.core.config import Settings

    return Settings.from_env().max_source_bytes


@contextlib.contextmanager
def _open_source(
    uri: str, *, timeout: float, s3_client: Any | None
) -> Iterator[tuple[Iterator[bytes], int | None]]:
    """Open ``uri`` for streaming: its chunks and, when the source says, its size in bytes.

    Raises:
        DataSourceError: The source does not exist or its scheme is unsupported.
        ConnectionError: A network source did not answer (transient: worth a retry).
    """
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        import requests

        try:
            response = requests.get(uri, timeout=timeout, stream=True)
        except requests.Timeout as exc:
            raise ConnectionError(f"data source {uri} did not answer within {timeout:g} s") from exc
        except requests.ConnectionError as exc:
            raise ConnectionError(f"cannot reach data source {uri}: {exc}") from exc
        with response:
            if response.status_code == 404:
                raise DataSourceError(f"data source {uri} does not exist (HTTP 404)")
            if response.status_code >= 500:
                raise ConnectionError(f"data source {uri} answered HTTP {response.status_code}")
            if response.status_code != 200:
                raise DataSourceError(f"data source {uri} answered HTTP {response.status_code}")
            length = response.headers.get("Content-Length") or ""
            # Content-Encoding (gzip) makes Content-Length the compressed size: no bound then.
            known = length.isdigit() and not response.headers.get("Content-Encoding")

            def chunks() -> Iterator[bytes]:
                try:
                    yield from response.iter_content(CHUNK_BYTES)
                except (
                    requests.ConnectionError,
                    requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                ) as exc:
                    raise ConnectionError(f"data source {uri} broke off: {exc}") from exc

            yield chunks(), int(length) if known else None
    elif scheme == "s3":
        bucket, key = split_s3(uri)
        client = s3_client_or_default(s3_client)
        try:
            obj = client.get_object(Bucket=bucket, Key=key)
        except client.exceptions.NoSuchKey as exc:
            raise DataSourceError(f"data source {uri} does not exist") from exc
        except client.exceptions.NoSuchBucket as exc:
            raise DataSourceError(f"bucket of data source {uri} does not exist") from exc
        body = obj["Body"]
        try:
            yield body.iter_chunks(CHUNK_BYTES), int(obj["ContentLength"])
        finally:
            body.close()
    elif scheme in ("", "file"):
        path = Path(urlparse(uri).path if scheme == "file" else uri).expanduser()
        if not path.is_file():
            raise DataSourceError(f"data source {uri} does not exist or is not a file")
        with path.open("rb") as handle:
            yield iter(lambda: handle.read(CHUNK_BYTES), b""), path.stat().st_size
    else:
        raise DataSourceError(f"unsupported data source scheme {scheme!r} in {uri}")


@contextlib.contextmanager
def _checked_stream(
    uri: str,
    *,
    timeout: float = 30.0,
    s3_client: Any | None = None,
    max_bytes: int | None = None,
) -> Iterator[tuple[Iterator[bytes], Scan]]:
    """Open ``uri`` and yield its chunks, each hashed and checked as it passes, and the scan.

    The source is opened (and a missing one refused) before the caller creates anything.
    """
    scan = Scan(uri, max_bytes)
    with _open_source(uri, timeout=timeout, s3_client=s3_client) as (chunks, size):
        if size is not None and max_bytes is not None and size > max_bytes:
            raise too_large(uri, size, max_bytes)

        def checked() -> Iterator[bytes]:
            for chunk in chunks:
                scan.update(chunk)
                yield chunk
            scan.finish()

        yield checked(), scan


def _copy_source(
    uri: str,
    out: IO[bytes],
    *,
    timeout: float = 30.0,
    s3_client: Any | None = None,
    max_bytes: int | None = None,
) -> Scan:
    """Stream the object at ``uri`` into ``out``, hashing and checking it on the way.

    Returns:
        What the scan saw: the stream's sha256 and size.

    Raises:
        DataSourceError: The source does not exist, is too large, is not UTF-8, or is
            unsupported.
        ConnectionError: A network source did not answer (transient: worth a retry).
    """
    stream = _checked_stream(uri, timeout=timeout, s3_client=s3_client, max_bytes=max_bytes)
    with stream as (chunks, scan):
        for chunk in chunks:
            out.write(chunk)
    return scan


def read_bytes(
    uri: str,
    *,
    timeout: float = 30.0,
    s3_client: Any | None = None,
    max_bytes: int | None = None,
) -> bytes:
    """Read the whole object at ``uri`` into memory (for small objects; ingest streams).

    Args:
        uri: Local path, ``file://``, ``http(s)://`` or ``s3://`` URI.
        timeout: Seconds before an HTTP read is abandoned.
        s3_client: A boto3 S3 client to use for ``s3://`` (default: one from the environment).
        max_bytes: Refuse a larger object (default: ``WINE_MAX_SOURCE_MB``).

    Raises:
        DataSourceError: The source does not exist, is too large, is not UTF-8, or is
            unsupported.
        ConnectionError: A network source did not answer (transient: worth a retry).
    """
    buffer = io.BytesIO()
    limit = _default_max_bytes() if max_bytes is None else max_bytes
    _copy_source(uri, buffer, timeout=timeout, s3_client=s3_client, max_bytes=limit)
    return buffer.getvalue()


def snapshot_uri(staging_uri: str, snapshot_key: str) -> str:
    """Where the raw snapshot for ``snapshot_key`` (e.g. the logical date) lives."""
    safe_key = re.sub(r"[^A-Za-z0-9._=-]+", "_", snapshot_key).strip("_") or "manual"
    return f"{staging_uri.rstrip('/')}/raw/{safe_key}/{SNAPSHOT_FILENAME}"


@contextlib.contextmanager
def _local_copy(uri: str, *, s3_client: Any | None) -> Iterator[tuple[Path, Scan]]:
    """The object at ``uri`` as a local file, and its scan (sha256, size, UTF-8 checked).

    A local snapshot is read where it is; an S3 one is streamed to a temporary file first.
    """
    if uri.startswith("s3://"):
        with tempfile.NamedTemporaryFile(prefix="wine-snapshot-", suffix=".csv") as tmp:
            scan = _copy_source(uri, tmp, s3_client=s3_client)
            tmp.flush()
            yield Path(tmp.name), scan
        return
    with _checked_stream(uri) as (chunks, scan):
        for _ in chunks:
            pass
    yield Path(uri), scan


def ingest(
    source_uri: str,
    staging_uri: str,
    snapshot_key: str,
    *,
    timeout: float = 30.0,
    s3_client: Any | None = None,
    max_source_bytes: int | None = None,
) -> IngestResult:
    """Snapshot the source once per ``snapshot_key`` and report its identity.

    A re-run with the same key reuses the existing snapshot instead of fetching again, so the
    bytes a run trains on never change under it. The source is streamed to a temporary file
    beside the snapshot (hashed and checked on the way), parsed there, and only then put in
    place, so an unreadable source never becomes a snapshot.

    Args:
        source_uri: Where the raw CSV comes from.
        staging_uri: Local folder or ``s3://bucket/prefix`` for immutable snapshots.
        snapshot_key: Identifies the run's input, normally the logical date.
        timeout: Seconds allowed for an HTTP source.
        s3_client: boto3 S3 client for ``s3://`` URIs (default: from the environment).
        max_source_bytes: Largest source accepted (default: ``WINE_MAX_SOURCE_MB``, read now).

    Raises:
        DataSourceError: The source is missing, too large or not parseable as the wine CSV.
    """
    target = snapshot_uri(staging_uri, snapshot_key)
    reused = exists(target, s3_client=s3_client)
    if not reused:
        limit = _default_max_bytes() if max_source_bytes is None else max_source_bytes
        stream = _checked_stream(source_uri, timeout=timeout, s3_client=s3_client, max_bytes=limit)
        # The source first: a missing one is refused before anything is created in staging.
        with stream as (chunks, scan), staged(target) as tmp:
            for chunk in chunks:
                tmp.write(chunk)
            tmp.close()
            path = Path(tmp.name)
            rows = count_rows(path, source=source_uri)  # refuse unreadable data before keeping it
            # Another attempt may have won the race: then trust what it stored, not our copy.
            reused = not publish_once(path, target, s3_client=s3_client)
    if reused:
        with _local_copy(target, s3_client=s3_client) as (path, scan):
            rows = count_rows(path, source=target)
    result = IngestResult(
        source_uri=source_uri,
        snapshot_uri=target,
        sha256=scan.sha256,
        rows=rows,
        size_bytes=scan.size,
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
    """Read a snapshot into typed columns and check it is the one ingest recorded.

    Raises:
        DataSourceError: The snapshot changed since ingest (sha256 differs).
    """
    with _local_copy(snapshot_uri, s3_client=s3_client) as (path, scan):
        if scan.sha256 != expected_sha256:
            raise DataSourceError(
                f"snapshot {snapshot_uri} changed since ingest:"
                f" sha256 {scan.sha256} != {expected_sha256}"
            )
        return read_csv_file(path, source=snapshot_uri)
