"""Write-once objects at a local path or in S3: where snapshots and other immutable files go.

An object is published only if nothing is there yet, so a retried task never replaces what an
earlier attempt wrote: locally by a hard link (no reader sees half a file), in S3 by a
conditional create (``If-None-Match: *``), in parts when the file is large.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from wine_quality.core.config import MB

CHUNK_BYTES = 8 * MB
# S3 objects above this are uploaded in parts of this size: a part is the most held in memory.
MULTIPART_BYTES = 64 * MB


def split_s3(uri: str) -> tuple[str, str]:
    """Bucket and key of an ``s3://`` URI."""
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def s3_client_or_default(client: Any | None) -> Any:
    """``client``, else a boto3 S3 client configured from the environment."""
    if client is not None:
        return client
    import boto3

    # Outside Airflow (scripts, tests) boto3 reads keys and the endpoint (AWS_ENDPOINT_URL_S3,
    # for MinIO or moto) from its usual environment variables and config files.
    return boto3.client("s3")


def write_once(uri: str, data: bytes, *, s3_client: Any | None = None) -> bool:
    """Write ``data`` to ``uri`` unless an object is already there.

    Returns:
        True if written, False if an object already existed (it is left untouched).
    """
    with staged(uri) as tmp:
        tmp.write(data)
        tmp.close()
        return publish_once(Path(tmp.name), uri, s3_client=s3_client)


def publish_once(path: Path, uri: str, *, s3_client: Any | None = None) -> bool:
    """Make the file at ``path`` the object at ``uri``, unless an object is already there.

    Locally the file is hard-linked into place (no copy, and no reader ever sees a half-written
    snapshot); in S3 it is uploaded with ``If-None-Match: *``, in parts when it is large.

    Returns:
        True if published, False if an object already existed (it is left untouched).
    """
    if uri.startswith("s3://"):
        return _upload_once(path, uri, s3_client_or_default(s3_client))
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(path, target)
    except FileExistsError:
        return False
    except OSError:
        # A file system without hard links: an exclusive create, then a streamed copy.
        try:
            with target.open("xb") as out, path.open("rb") as source:
                shutil.copyfileobj(source, out, CHUNK_BYTES)
        except FileExistsError:
            return False
    return True


def _precondition_failed(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("PreconditionFailed", "412", "ConditionalRequestConflict")


def _upload_once(path: Path, uri: str, client: Any) -> bool:
    bucket, key = split_s3(uri)
    size = path.stat().st_size
    if size <= MULTIPART_BYTES:
        try:
            with path.open("rb") as body:
                # IfNoneMatch makes the create conditional on stores that support it (S3, MinIO).
                client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
        except client.exceptions.ClientError as exc:
            if _precondition_failed(exc):
                return False
            raise
        return True
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        parts = []
        with path.open("rb") as source:
            for number, part in enumerate(iter(lambda: source.read(MULTIPART_BYTES), b""), 1):
                etag = client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                )["ETag"]
                parts.append({"ETag": etag, "PartNumber": number})
        # The condition is checked when the parts become the object: one writer wins.
        client.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
            IfNoneMatch="*",
        )
    except client.exceptions.ClientError as exc:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        if _precondition_failed(exc):
            return False
        raise
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return True


def exists(uri: str, *, s3_client: Any | None = None) -> bool:
    """Whether an object exists at ``uri``."""
    if uri.startswith("s3://"):
        bucket, key = split_s3(uri)
        client = s3_client_or_default(s3_client)
        try:
            client.head_object(Bucket=bucket, Key=key)
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
    return Path(uri).is_file()


@contextlib.contextmanager
def staged(target: str) -> Iterator[Any]:
    """A temporary file to write ``target``'s content into: beside a local target (so it can be
    linked into place), in the system's temporary folder for an S3 one; always removed after."""
    folder = None
    if "://" not in target:
        folder = Path(target).parent
        folder.mkdir(parents=True, exist_ok=True)
    name = f".{Path(urlparse(target).path).name}.{uuid.uuid4().hex}.partial"
    path = Path(folder or tempfile.gettempdir()) / name
    try:
        with path.open("xb") as handle:
            yield handle
    finally:
        path.unlink(missing_ok=True)
