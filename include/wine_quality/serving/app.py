"""The model server app: MLflow's own scoring app for the served version, wrapped for deployment.

Scoring paths (``/invocations``, ``/ping``, ``/health``, ``/version``) go to the MLflow scoring app
of the version in the slot (:mod:`wine_quality.serving.slot`), so request parsing, schema
enforcement and the response format are exactly those of ``mlflow models serve``. The slot is
read once when a request arrives, so the whole request belongs to that version.

This module owns the routing and what the server adds around MLflow's app: the ``/invocations``
wrapper (the request limits of :mod:`wine_quality.serving.limits` first, then the version's fast
path of :mod:`wine_quality.serving.fast` for the common JSON requests, else the version's app),
the ``X-Model-Version`` and ``X-Model-Name`` headers, error bodies rewritten without stack traces,
``GET /served-model``, ``POST /admin/reload`` behind a bearer token, a readiness answer that says
why nothing is served, and the lifespan that starts the slot's loader (and, with several
workers, the loop that follows the other workers: :mod:`wine_quality.serving.workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from importlib import metadata
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wine_quality.serving import fast, limits, workers
from wine_quality.serving.settings import ServerSettings
from wine_quality.serving.slot import ModelSlot, ReloadError, ServedModel

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

# The paths MLflow's scoring app answers; every other path is the server's own.
SCORING_PATHS = frozenset({"/invocations", "/ping", "/health", "/version"})
VERSION_HEADER = "X-Model-Version"
NAME_HEADER = "X-Model-Name"
# MLflow's answer to any exception a model raises; the model's reason is in the trace.
MLFLOW_UNEXPECTED_ERROR = "Encountered an unexpected error while evaluating the model"
# Fast-path bodies up to this size (about 100 rows) are scored on the event loop itself.
INLINE_BODY_BYTES = 16 * 1024


class ModelServer:
    """The outer ASGI app: scoring paths go to the current version's app, the rest to ``control``.

    Attributes:
        slot: What is served.
        control: The server's own endpoints and the lifespan (a Starlette app).
    """

    def __init__(self, settings: ServerSettings, shared: workers.SharedState | None = None) -> None:
        self.settings = settings
        self.slot = ModelSlot(settings, shared)
        self.control = _control_app(self.slot)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI connection."""
        if scope["type"] == "http" and scope["path"] in SCORING_PATHS:
            await self._score(scope, receive, send)
        else:
            await self.control(scope, receive, send)

    async def _score(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        invocation = path == "/invocations" and scope["method"] == "POST"
        if invocation:
            headers = Headers(scope=scope)
            refusal = limits.check_headers(headers, self.settings.max_body_bytes)
            if refusal is not None:
                if refusal.status_code == 413:  # Declared too large: drain, then answer.
                    drained = await limits.drain(receive, int(headers["content-length"]))
                    refusal = limits.too_large(self.settings.max_body_bytes, close=not drained)
                await refusal(scope, receive, send)
                return
        served = self.slot.current  # Read once: this whole request belongs to this version.
        if served is None:
            await self._unavailable(path)(scope, receive, send)
            return
        if invocation:
            try:
                body = await limits.read_body(receive, self.settings.max_body_bytes)
            except limits.ClientGone:
                return
            except limits.BodyTooLarge:
                drained = await limits.drain(receive)
                await limits.too_large(self.settings.max_body_bytes, close=not drained)(
                    scope, receive, send
                )
                return
            content_type = headers.get("content-type", "")
            if served.fast is not None and limits.is_json(content_type):
                answer = await self._score_fast(served.fast, body)
                if answer is not None:
                    await _send_answer(served, answer, send)
                    return
            refusal = limits.check_json(headers, body, self.settings.max_rows)
            refusal = refusal or limits.check_parquet(headers, body, self.settings.max_rows)
            refusal = refusal or limits.check_csv(headers, body, self.settings.max_rows)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            receive = limits.replay(body, receive)
            if served.fast is not None and content_type.split(";")[0].strip() == "text/csv":
                await self._forward(served, _schemaless_csv(served), scope, receive, send)
                return
        await self._forward(served, served.app, scope, receive, send)

    async def _score_fast(self, scorer: fast.FastScorer, body: bytes) -> fast.Answer | None:
        if len(body) <= INLINE_BODY_BYTES:
            return scorer.score(body, self.settings.max_rows)
        # A large batch would hold up every other request on the event loop.
        return await asyncio.to_thread(scorer.score, body, self.settings.max_rows)

    def _unavailable(self, path: str) -> Response:
        if path == "/version":  # MLflow's version does not depend on a model.
            return Response(metadata.version("mlflow"), media_type="application/json")
        if path == "/invocations":
            return limits.error(503, "MODEL_NOT_LOADED", f"no model loaded: {self.slot.reason}")
        return JSONResponse({"status": "unavailable", "reason": self.slot.reason}, 503)

    async def _forward(
        self, served: ServedModel, app: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Run the request on ``app`` (of ``served``), adding version headers, cleaning errors."""
        held: Message | None = None  # An error's response start, held until its body is cleaned.
        chunks: list[bytes] = []
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal held, started
            if message["type"] == "http.response.start":
                if message["status"] >= 400:
                    held = message
                    return
                headers = MutableHeaders(scope=message)
                headers[VERSION_HEADER] = served.version
                headers[NAME_HEADER] = served.name
                started = True
                await send(message)
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._send_error(served, held, b"".join(chunks), send)
                    started = True
            else:
                await send(message)

        try:
            await app(dict(scope), receive, send_wrapper)
        # MLflow's app answers with a 500 and then re-raises; anything else ends here too.
        except Exception:
            logger.exception("version %s failed on %s", served.version, scope["path"])
            if not started:
                await limits.error(500, "INTERNAL_ERROR", "internal error while scoring")(
                    scope, receive, send
                )

    async def _send_error(
        self, served: ServedModel, start: Message, body: bytes, send: Send
    ) -> None:
        status = start["status"]
        cleaned = _clean_error(status, body, served.version)
        headers = MutableHeaders(scope=start)
        if cleaned is not None:
            status, body = cleaned
            headers["content-type"] = "application/json"
        headers["content-length"] = str(len(body))
        headers[VERSION_HEADER] = served.version
        headers[NAME_HEADER] = served.name
        await send({**start, "status": status, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_answer(served: ServedModel, answer: fast.Answer, send: Send) -> None:
    """Send a response the fast path produced, with the version headers."""
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer.body)).encode()),
                (b"x-model-version", served.version.encode()),
                (b"x-model-name", served.name.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})


def _schemaless_csv(served: ServedModel) -> ASGIApp:
    """MLflow's own CSV scoring of ``served``'s model, parsing without the logged schema.

    MLflow's CSV parser asks the schema for pandas dtypes, and the wrapper's ``Any``-typed
    columns have none, so every CSV request failed. The wrapper's columns are typed ``Any``
    because MLflow refuses int64 -> double in a DataFrame, which would break offline callers
    passing the runbook's row. Without a schema MLflow reads the CSV as ``mlflow models serve``
    reads it for any unsigned model; the schema is still enforced by the model, and the
    wrapper converts and checks the values.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server

        request = Request(scope, receive)
        body, content_type = await request.body(), request.headers.get("content-type", "")
        try:
            result = await asyncio.to_thread(
                scoring_server.invocations, body, content_type, served.model, None
            )
        except MlflowException as exc:  # What MLflow's app answers for its own exceptions.
            response = Response(exc.serialize_as_json(), exc.get_http_status_code())
        else:
            response = Response(result.response, result.status, media_type=result.mimetype)
        await response(scope, receive, send)

    return app


def _clean_error(status: int, body: bytes, version: str) -> tuple[int, bytes] | None:
    """An error body without stack trace, or None to pass the original through unchanged.

    MLflow's JSON errors keep their status (400 for bad input) and ``error_code``, lose the
    ``stack_trace`` (logged here instead) and get a one-line message; a 5xx becomes a generic 500.
    """
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not {"error_code", "stack_trace"} & document.keys():
        if status >= 500 and status != 504:  # 504: MLflow's request timeout, a plain sentence.
            logger.error("version %s answered %s: %s", version, status, limits.short(body))
            return 500, limits.error_body("INTERNAL_ERROR", "internal error while scoring")
        if isinstance(document, dict):
            return None
        # A plain-text refusal (415 for an unsupported content type): same JSON shape as others.
        code = "UNSUPPORTED_MEDIA_TYPE" if status == 415 else "BAD_REQUEST"
        return status, limits.error_body(code, limits.short(body.decode("utf-8", errors="replace")))
    trace = document.get("stack_trace")
    message = limits.short(document.get("message", ""))
    if status >= 500:
        logger.error("version %s answered %s: %s\n%s", version, status, message, trace or "")
        return 500, limits.error_body("INTERNAL_ERROR", "internal error while scoring")
    if trace:
        logger.warning("version %s rejected a request: %s\n%s", version, message, trace)
        if message.startswith(MLFLOW_UNEXPECTED_ERROR):
            message = _model_reason(trace) or message
    return status, limits.error_body(str(document.get("error_code", "BAD_REQUEST")), message)


def _model_reason(trace: str) -> str | None:
    """The model's own refusal at the end of ``trace`` (a ``ValueError``), else None.

    The wrapper raises ValueError naming the column for bad values; MLflow answers every
    exception from a model with one generic sentence and the trace, which is not sent.
    """
    lines = trace.strip().splitlines()
    kind, sep, reason = (lines[-1] if lines else "").partition(": ")
    return limits.short(reason) if sep and kind == "ValueError" and reason.strip() else None


def _control_app(slot: ModelSlot) -> Starlette:
    """The server's own endpoints, and the lifespan that starts the background loader."""
    settings = slot.settings

    async def served_model(request: Request) -> JSONResponse:
        served = slot.current
        if served is None:
            document: dict[str, Any] = {
                "name": slot.name,
                "version": None,
                "model_uri": None,
                "run_id": None,
                "loaded_at": None,
                "reason": slot.reason,
            }
        else:
            document = served.describe()
        document["alias"] = slot.alias
        if slot.shared is not None:
            document["workers"] = await workers.describe(slot.shared)
        return JSONResponse(document)

    async def reload(request: Request) -> JSONResponse:
        if not settings.token:
            return limits.error(403, "RELOADS_DISABLED", "reloads disabled: no token is configured")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), settings.token.encode()
        ):
            return limits.error(
                401,
                "UNAUTHENTICATED",
                "missing or wrong bearer token",
                **{"WWW-Authenticate": "Bearer"},
            )
        try:
            requested = _requested_version(await request.body())
        except ValueError as exc:
            return limits.error(400, "BAD_REQUEST", str(exc))
        try:
            result = await slot.sync(requested)
            document: dict[str, Any] = {
                "version": result.version,
                "previous_version": result.previous_version,
                "changed": result.changed,
            }
            if slot.shared is not None:  # Answer once every worker serves the target.
                document |= await workers.converge(slot.shared, settings.converge_seconds)
        except ReloadError as exc:
            return limits.error(exc.status, exc.code, limits.short(exc, 600))
        return JSONResponse(document)

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the exception itself; the client gets no details.
        return limits.error(500, "INTERNAL_ERROR", "internal error")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logger.info(
            "model server following %s at %s (reloads %s, polling %s)",
            settings.model_uri,
            settings.tracking_uri,
            "enabled" if settings.token else "disabled",
            f"every {settings.poll_seconds:g} s" if settings.poll_seconds else "off",
        )
        loader = asyncio.create_task(slot.keep_in_sync(), name="model-loader")
        try:
            async with workers.taking_part(slot):  # With other workers: their agreement.
                yield
        finally:
            await workers.cancel(loader)

    return Starlette(
        routes=[
            Route("/served-model", served_model, methods=["GET"]),
            Route("/admin/reload", reload, methods=["POST"]),
        ],
        exception_handlers={Exception: internal_error},
        lifespan=lifespan,
    )


def _requested_version(body: bytes) -> str | None:
    """The optional ``{"version": "N"}`` of a reload request.

    Raises:
        ValueError: The body is not empty, ``{}`` or such an object.
    """
    if not body.strip():
        return None
    try:
        document = json.loads(body)
    except ValueError:
        raise ValueError('body must be empty or JSON like {"version": "3"}') from None
    if not isinstance(document, dict):
        raise ValueError('body must be a JSON object like {"version": "3"}')
    version = document.get("version")
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, str | int):
        raise ValueError("version must be a string or an integer")
    text = str(version).strip()
    if not text.isdigit():
        raise ValueError(f"version must be a registered version number, got {text!r}")
    return text


def create_app(settings: ServerSettings | None = None) -> ModelServer:
    """Build the server; nothing is loaded or contacted until the ASGI lifespan starts.

    Args:
        settings: What to serve; default ``ServerSettings.from_env()``.

    Returns:
        The ASGI app to hand to uvicorn in this process (several workers: see ``workers``).

    Raises:
        ValueError: The settings from the environment are unusable.
    """
    return ModelServer(settings or ServerSettings.from_env())
