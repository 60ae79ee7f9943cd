"""Request limits: what ``/invocations`` accepts before MLflow sees it, and how the server refuses.

This module owns the guards in front of MLflow's parser (a Content-Type, a body no larger than
``max_body_bytes`` whether declared or streamed and drained before it is refused, JSON that
parses, no more than ``max_rows`` rows of JSON, Parquet or CSV)
and the shape of every refusal: a short JSON ``{"error_code", "message"}`` body, one line, never a
stack trace. Stock MLflow answers several of these requests with a 500 or reads any body whole.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from starlette.datastructures import Headers
    from starlette.types import Message, Receive

# MLflow echoes the whole input into some error messages: cut them to this many characters.
MESSAGE_LIMIT = 600
# Payload keys whose value holds one entry per row (``dataframe_split`` is counted apart).
ROW_KEYS = ("dataframe_records", "instances", "inputs")
PARQUET = "application/vnd.apache.parquet"
# An oversized body is read and dropped, up to this much and this long, before the 413 is sent:
# closing a socket with unread bytes makes the kernel answer with a reset, and many clients then
# report the reset instead of the 413. Past these bounds the 413 goes out with Connection: close.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0
DRAIN_IDLE_SECONDS = 1.0
# MLflow parses a body as JSON only for exactly this type (its charset, if given, utf-8).
_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})


def error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    """The server's error answer: ``{"error_code": code, "message": message}``."""
    return JSONResponse({"error_code": code, "message": message}, status, headers=headers or None)


def error_body(code: str, message: str) -> bytes:
    """The bytes of an error answer, for rewriting a response already under way."""
    return json.dumps({"error_code": code, "message": message}).encode()


def short(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """One line of at most ``limit`` characters, never a traceback.

    A long message keeps its head and its tail: MLflow puts the echoed input in the middle and
    the reason (a missing column, say) at the end.
    """
    flat = str(text).split("Traceback (most recent call last)", 1)[0]
    flat = " ".join(flat.split())
    if len(flat) <= limit:
        return flat
    half = (limit - 5) // 2
    return f"{flat[:half]} ... {flat[-half:]}"


def check_headers(headers: Headers, max_body_bytes: int) -> Response | None:
    """The answer to a request refused on its headers alone, before reading the body."""
    if not headers.get("content-type", "").strip():
        # Stock MLflow answers a missing Content-Type with a 500.
        return error(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "missing Content-Type: send application/json, text/csv or"
            " application/vnd.apache.parquet",
        )
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            return error(400, "BAD_REQUEST", "invalid Content-Length")
        if int(declared) > max_body_bytes:
            return too_large(max_body_bytes, close=True)
    return None


def too_large(max_body_bytes: int, *, close: bool) -> Response:
    """The 413 for a body over the limit; ``close`` when the rest of the body was left unread."""
    return error(
        413,
        "REQUEST_TOO_LARGE",
        f"request body larger than {max_body_bytes} bytes; split it into smaller batches",
        **({"Connection": "close"} if close else {}),
    )


class BodyTooLarge(Exception):
    """The streamed body passed the limit (answer with :func:`too_large`)."""


class ClientGone(Exception):
    """The client disconnected before sending the whole body (nobody to answer)."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refusing it as soon as it passes ``limit`` bytes.

    Raises:
        BodyTooLarge: More than ``limit`` bytes arrived.
        ClientGone: The client disconnected first.
    """
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body += message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return bytes(body)


async def drain(receive: Receive, declared: int | None = None) -> bool:
    """Read and drop the rest of a refused body, within the drain bounds.

    Args:
        receive: The request's ASGI receive.
        declared: The Content-Length, if any: past ``DRAIN_BYTES`` nothing is read.

    Returns:
        Whether the whole body was read (the connection can then be kept open).
    """
    if declared is not None and declared > DRAIN_BYTES:
        return False
    dropped = 0
    deadline = time.monotonic() + DRAIN_SECONDS
    while dropped <= DRAIN_BYTES:
        wait = min(DRAIN_IDLE_SECONDS, deadline - time.monotonic())
        if wait <= 0:
            return False
        try:
            message = await asyncio.wait_for(receive(), wait)
        except TimeoutError:  # The client stopped sending: answer now.
            return False
        if message["type"] == "http.disconnect":
            return False
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the already-read body, then waits for the disconnect."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def rows_in(payload: Any) -> int:
    """How many rows a scoring payload asks for (0 when its shape is not a known one)."""
    if not isinstance(payload, dict):
        return 0
    split = payload.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("data"), list):
        return len(split["data"])
    for key in ROW_KEYS:
        value = payload.get(key)
        if isinstance(value, list):
            return len(value)
        if isinstance(value, dict):  # column -> values
            return max((len(v) for v in value.values() if isinstance(v, list)), default=0)
    return 0


def is_json(content_type: str) -> bool:
    """Whether MLflow parses a body of this Content-Type as JSON (``text/json`` it refuses)."""
    parts = [part.strip() for part in content_type.split(";")]
    return "; ".join([parts[0], *(p.lower() for p in parts[1:])]) in _JSON_TYPES


def check_json(headers: Headers, body: bytes, max_rows: int) -> Response | None:
    """Refuse JSON bodies that are empty, not JSON, nested past the parser's limit or too long.

    MLflow parses and scores what passes; this only guards its parser and the worker. Deep
    nesting raises RecursionError in the parser, which MLflow would turn into a 500. A body
    MLflow will not parse as JSON (``text/json``, say) is left to its 415.
    """
    if not is_json(headers.get("content-type", "")):
        return None
    if not body.strip():
        return error(400, "BAD_REQUEST", "empty request body: send a JSON scoring payload")
    try:
        payload = json.loads(body)
    except RecursionError:
        return error(400, "BAD_REQUEST", "request JSON is nested too deeply")
    except ValueError:
        return error(400, "BAD_REQUEST", "request body is not valid JSON (UTF-8)")
    return _check_rows(rows_in(payload), max_rows)


def check_parquet(headers: Headers, body: bytes, max_rows: int) -> Response | None:
    """Refuse Parquet bodies with more than ``max_rows`` rows (read from the file's footer).

    A body that is not Parquet is left to MLflow, which answers it with a 400.
    """
    if headers.get("content-type", "").split(";")[0].strip() != PARQUET:
        return None
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(io.BytesIO(body)).metadata.num_rows
    except Exception:  # Any unreadable body: MLflow's own parser answers it.  # noqa: BLE001
        return None
    return _check_rows(rows, max_rows)


def check_csv(headers: Headers, body: bytes, max_rows: int) -> Response | None:
    """Refuse CSV bodies with more than ``max_rows`` rows (lines after the header).

    Blank lines are not rows (pandas skips them). A quoted value spanning lines would count
    twice; the features are numbers, so a body that has one is refused by MLflow anyway.
    """
    if headers.get("content-type", "").split(";")[0].strip() != "text/csv":
        return None
    return _check_rows(sum(1 for line in body.splitlines() if line.strip()) - 1, max_rows)


def _check_rows(rows: int, max_rows: int) -> Response | None:
    if rows > max_rows:
        return error(
            413,
            "REQUEST_TOO_LARGE",
            f"{rows} rows in one request; at most {max_rows} (split it into batches)",
        )
    return None
