"""The model server: MLflow's own scoring app for one registered version, swapped whole on reload.

For every version it loads, the server builds MLflow's scoring app
(``mlflow.pyfunc.scoring_server.init``), so request parsing, schema enforcement and the response
format are exactly those of ``mlflow models serve``. The outer app only decides *which* of those
apps answers: it keeps the current ``ServedModel`` (a version and its app) in one attribute,
reads that attribute once when a request arrives and hands the whole request to that app. A
reload builds the next ``ServedModel`` in a worker thread and then replaces the attribute in one
assignment on the event loop, so a request in flight finishes on the version it started with
and no response mixes two versions.

Around MLflow's app the server adds what a deployment needs: ``GET /served-model``, an
``X-Model-Version`` header, ``POST /admin/reload`` behind a bearer token, a readiness probe that
says why it is not ready, a cap on the request body, and error bodies without stack traces.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wine_quality.config import MODEL_NAME, PRODUCTION_ALIAS, TRACKING_URI_DEFAULT, Settings

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

DEFAULT_MODEL_URI = f"models:/{MODEL_NAME}@{PRODUCTION_ALIAS}"
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_RETRY_SECONDS = 5.0
DEFAULT_MAX_ROWS = 10_000
# The paths MLflow's scoring app answers; every other path is the server's own.
SCORING_PATHS = frozenset({"/invocations", "/ping", "/health", "/version"})
# MLflow echoes the whole input into some error messages: cut them to this many characters.
MESSAGE_LIMIT = 600
VERSION_HEADER = "X-Model-Version"
NAME_HEADER = "X-Model-Name"

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
    """

    tracking_uri: str = TRACKING_URI_DEFAULT
    model_uri: str = DEFAULT_MODEL_URI
    token: str = field(default="", repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    poll_seconds: float = 0.0
    retry_seconds: float = DEFAULT_RETRY_SECONDS
    max_rows: int = DEFAULT_MAX_ROWS

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
        )


@dataclass(frozen=True)
class ServedModel:
    """One loaded registered version and the MLflow scoring app built around it."""

    name: str
    version: str
    run_id: str | None
    loaded_at: str
    app: ASGIApp = field(repr=False, compare=False)
    # Owns the downloaded artifacts; removed when the last request using this version is done.
    workdir: tempfile.TemporaryDirectory[str] = field(repr=False, compare=False)

    @property
    def model_uri(self) -> str:
        """The pinned URI that was loaded (not the alias, which may have moved since)."""
        return f"models:/{self.name}/{self.version}"

    def describe(self) -> dict[str, Any]:
        """The ``/served-model`` document."""
        return {
            "name": self.name,
            "version": self.version,
            "model_uri": self.model_uri,
            "run_id": self.run_id,
            "loaded_at": self.loaded_at,
        }


class ReloadError(Exception):
    """A reload that left what is served unchanged; ``status`` is the HTTP answer."""

    status = 502
    code = "RELOAD_FAILED"


class VersionConflict(ReloadError):
    """The caller asked for a version the alias does not point to."""

    status = 409
    code = "VERSION_CONFLICT"


class RegistryUnavailable(ReloadError):
    """The tracking server could not be asked where the alias points."""

    code = "REGISTRY_UNAVAILABLE"


class LoadFailed(ReloadError):
    """The alias target could not be downloaded or loaded."""

    code = "LOAD_FAILED"


@dataclass(frozen=True)
class SyncResult:
    """What a reload did."""

    version: str | None
    previous_version: str | None
    changed: bool


def _short(text: object, limit: int = MESSAGE_LIMIT) -> str:
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


def _is_missing(exc: Exception) -> bool:
    """Whether the registry said "no such model or alias" (as opposed to failing)."""
    code = getattr(exc, "error_code", "")
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    # MLflow reports a missing alias of an existing model as INVALID_PARAMETER_VALUE.
    message = str(getattr(exc, "message", exc))
    return code == "INVALID_PARAMETER_VALUE" and "alias" in message and "not found" in message


class ModelSlot:
    """The single reference to what is served, and the only code that replaces it.

    ``current`` is read once per request and replaced by one assignment on the event loop, so a
    reader gets either the old ``ServedModel`` or the new one, never a mix. ``sync`` holds a lock
    for its whole resolve-load-swap sequence, so concurrent reloads (admin, poll, retry) run one
    after another.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.name, self.alias = parse_model_uri(settings.model_uri)
        self.current: ServedModel | None = None
        self.reason = "starting: no model loaded yet"
        self._lock = asyncio.Lock()
        self._failed_version: str | None = None  # Logged with its traceback once, not per retry.

    def _set_reason(self, reason: str) -> None:
        # Logged only when it changes: the retry loop would otherwise log it every few seconds.
        if reason != self.reason:
            logger.warning("%s", reason)
        self.reason = reason

    async def sync(self, requested: str | None = None) -> SyncResult:
        """Resolve the alias, load its version if it is not the one served, and swap it in.

        Args:
            requested: The version the caller expects the alias to name; checked, not obeyed.

        Returns:
            The version served afterwards and the one served before.

        Raises:
            RegistryUnavailable: The alias could not be resolved; nothing changed.
            VersionConflict: ``requested`` is not the alias target; nothing changed.
            LoadFailed: The target could not be loaded; the previous version is still served.
        """
        async with self._lock:
            previous = self.current
            previous_version = previous.version if previous else None
            try:
                target = await asyncio.to_thread(self._resolve)
            except Exception as exc:
                reason = (
                    f"cannot resolve {self.settings.model_uri} at {self.settings.tracking_uri}:"
                    f" {_short(exc, 200)}"
                )
                self._set_reason(reason)
                raise RegistryUnavailable(reason) from exc
            target_version = str(target.version) if target is not None else None
            if requested is not None and requested != target_version:
                raise VersionConflict(
                    f"alias {self.alias!r} points to version {target_version}, not {requested};"
                    " the server serves only the alias target"
                )
            if target is None:
                self._set_reason(f"no version of {self.name} has the alias {self.alias!r}")
                if previous is not None:
                    # The server serves the alias target, and there is none any more.
                    self.current = None
                    logger.warning(
                        "unloaded %s version %s: alias removed", self.name, previous_version
                    )
                return SyncResult(None, previous_version, changed=previous is not None)
            if target_version == previous_version:
                return SyncResult(target_version, previous_version, changed=False)
            try:
                served = await asyncio.to_thread(self._load, target)
            # A model's own code may raise anything while loading; the old version stays served.
            except Exception as exc:
                message = f"could not load version {target_version}: {_short(exc, 200)}"
                if self._failed_version != target_version:
                    logger.exception("loading %s version %s failed", self.name, target_version)
                else:
                    logger.warning("%s", message)
                self._failed_version = target_version
                if previous is None:
                    self._set_reason(message)
                raise LoadFailed(message) from exc
            self.current = served  # The swap: one assignment, on the event loop.
            self._failed_version = None
            logger.info(
                "serving %s version %s (run %s, was %s)",
                self.name, served.version, served.run_id, previous_version,
            )  # fmt: skip
            return SyncResult(served.version, previous_version, changed=True)

    def _resolve(self) -> ModelVersion | None:
        from mlflow import MlflowClient

        uri = self.settings.tracking_uri
        try:
            return MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
                self.name, self.alias
            )
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise

    def _load(self, target: ModelVersion) -> ServedModel:
        import mlflow.pyfunc
        from mlflow.artifacts import download_artifacts
        from mlflow.pyfunc import scoring_server

        version = str(target.version)
        uri = self.settings.tracking_uri
        # Kept by the ServedModel rather than closed here: pyfunc models may read it lazily.
        workdir = tempfile.TemporaryDirectory(prefix=f"wine-model-v{version}-")
        try:
            local = download_artifacts(
                artifact_uri=f"models:/{self.name}/{version}",
                dst_path=workdir.name,
                tracking_uri=uri,
                registry_uri=uri,
            )
            app = scoring_server.init(mlflow.pyfunc.load_model(local))
        except BaseException:
            workdir.cleanup()
            raise
        return ServedModel(
            name=self.name,
            version=version,
            run_id=target.run_id or None,
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            app=app,
            workdir=workdir,
        )

    async def keep_in_sync(self) -> None:
        """Background loop: load when nothing is served, and follow the alias if polling is on."""
        settings = self.settings
        while True:
            polling = self.current is not None and settings.poll_seconds > 0
            if self.current is None or polling:
                try:
                    await self.sync()
                except ReloadError:
                    pass  # Already logged; try again next round.
                # A bug here must not end the loop: the server would never load again.
                except Exception:
                    logger.exception("model loader failed; trying again")
            delay = settings.poll_seconds if polling else settings.retry_seconds
            await asyncio.sleep(delay)


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status, headers=headers or None)


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refusing it as soon as it passes ``limit`` bytes."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body += message.get("body", b"")
        if len(body) > limit:
            raise _BodyTooLarge
        if not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the already-read body, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


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
            logger.error("version %s answered %s: %s", version, status, _short(body))
            return 500, _error_body("INTERNAL_ERROR", "internal error while scoring")
        if isinstance(document, dict):
            return None
        # A plain-text refusal (415 for an unsupported content type): same JSON shape as others.
        code = "UNSUPPORTED_MEDIA_TYPE" if status == 415 else "BAD_REQUEST"
        return status, _error_body(code, _short(body.decode("utf-8", errors="replace")))
    trace = document.get("stack_trace")
    message = _short(document.get("message", ""))
    if status >= 500:
        logger.error("version %s answered %s: %s\n%s", version, status, message, trace or "")
        return 500, _error_body("INTERNAL_ERROR", "internal error while scoring")
    if trace:
        logger.warning("version %s rejected a request: %s\n%s", version, message, trace)
    return status, _error_body(str(document.get("error_code", "BAD_REQUEST")), message)


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "message": message}).encode()


ROW_KEYS = ("dataframe_records", "instances", "inputs")


def _rows_in(payload: Any) -> int:
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


def _check_json(headers: Headers, body: bytes, max_rows: int) -> Response | None:
    """Refuse JSON bodies that are empty, not JSON, nested past the parser's limit or too long.

    MLflow parses and scores what passes; this only guards its parser and the worker. Deep
    nesting raises RecursionError in the parser, which MLflow would turn into a 500.
    """
    if not headers.get("content-type", "").split(";")[0].strip().lower().endswith("json"):
        return None
    if not body.strip():
        return _error(400, "BAD_REQUEST", "empty request body: send a JSON scoring payload")
    try:
        payload = json.loads(body)
    except RecursionError:
        return _error(400, "BAD_REQUEST", "request JSON is nested too deeply")
    except ValueError:
        return _error(400, "BAD_REQUEST", "request body is not valid JSON (UTF-8)")
    rows = _rows_in(payload)
    if rows > max_rows:
        return _error(
            413,
            "REQUEST_TOO_LARGE",
            f"{rows} rows in one request; at most {max_rows} (split it into batches)",
        )
    return None


class ModelServer:
    """The outer ASGI app: scoring paths go to the current version's app, the rest to ``control``.

    Attributes:
        slot: What is served.
        control: The server's own endpoints and the lifespan (a Starlette app).
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.slot = ModelSlot(settings)
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
            refusal = self._refuse(Headers(scope=scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        served = self.slot.current  # Read once: this whole request belongs to this version.
        if served is None:
            await self._unavailable(path)(scope, receive, send)
            return
        if invocation:
            try:
                body = await _read_body(receive, self.settings.max_body_bytes)
            except _ClientGone:
                return
            except _BodyTooLarge:
                await self._too_large()(scope, receive, send)
                return
            refusal = _check_json(Headers(scope=scope), body, self.settings.max_rows)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self._forward(served, scope, receive, send)

    def _refuse(self, headers: Headers) -> Response | None:
        """The answer to a request refused on its headers alone, before reading the body."""
        if not headers.get("content-type", "").strip():
            # Stock MLflow answers a missing Content-Type with a 500.
            return _error(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "missing Content-Type: send application/json, text/csv or"
                " application/vnd.apache.parquet",
            )
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return _error(400, "BAD_REQUEST", "invalid Content-Length")
            if int(declared) > self.settings.max_body_bytes:
                return self._too_large()
        return None

    def _too_large(self) -> Response:
        return _error(
            413,
            "REQUEST_TOO_LARGE",
            f"request body larger than {self.settings.max_body_bytes} bytes;"
            " split it into smaller batches",
            Connection="close",
        )

    def _unavailable(self, path: str) -> Response:
        if path == "/version":  # MLflow's version does not depend on a model.
            return Response(metadata.version("mlflow"), media_type="application/json")
        if path == "/invocations":
            return _error(503, "MODEL_NOT_LOADED", f"no model loaded: {self.slot.reason}")
        return JSONResponse({"status": "unavailable", "reason": self.slot.reason}, 503)

    async def _forward(
        self, served: ServedModel, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Run the request on ``served.app``, adding version headers and cleaning error bodies."""
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
            await served.app(dict(scope), receive, send_wrapper)
        # MLflow's app answers with a 500 and then re-raises; anything else ends here too.
        except Exception:
            logger.exception("version %s failed on %s", served.version, scope["path"])
            if not started:
                await _error(500, "INTERNAL_ERROR", "internal error while scoring")(
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
        return JSONResponse({**document, "alias": slot.alias})

    async def reload(request: Request) -> JSONResponse:
        if not settings.token:
            return _error(403, "RELOADS_DISABLED", "reloads disabled: no token is configured")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), settings.token.encode()
        ):
            return _error(
                401,
                "UNAUTHENTICATED",
                "missing or wrong bearer token",
                **{"WWW-Authenticate": "Bearer"},
            )
        try:
            requested = _requested_version(await request.body())
        except ValueError as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        try:
            result = await slot.sync(requested)
        except ReloadError as exc:
            return _error(exc.status, exc.code, _short(exc))
        return JSONResponse(
            {
                "version": result.version,
                "previous_version": result.previous_version,
                "changed": result.changed,
            }
        )

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the exception itself; the client gets no details.
        return _error(500, "INTERNAL_ERROR", "internal error")

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
            yield
        finally:
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader

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
        The ASGI app to hand to uvicorn (one worker: the served model lives in this process).

    Raises:
        ValueError: The settings from the environment are unusable.
    """
    return ModelServer(settings or ServerSettings.from_env())
