"""The model slot: which registered version is served, and the only code that replaces it.

This module owns loading a version (download its artifacts, build MLflow's own scoring app
around it with ``mlflow.pyfunc.scoring_server.init`` and its fast path), resolving the alias in
the registry, the swap (one assignment of ``ModelSlot.current`` on the event loop, so a request
in flight finishes on the version it started with) and the background loop that loads at start,
retries while nothing is served and, if asked, follows the alias. A reload that fails leaves what
is served unchanged and says why (``ReloadError`` and its kinds).

In a server with several workers the slot also takes part in their agreement
(:mod:`wine_quality.serving.workers`): what it resolves it publishes before swapping, and it
adopts what other workers published.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from wine_quality.core import config
from wine_quality.core.tracking import is_not_found
from wine_quality.serving.fast import FastScorer
from wine_quality.serving.limits import short
from wine_quality.serving.settings import ServerSettings, parse_model_uri

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.pyfunc import PyFuncModel
    from starlette.types import ASGIApp

    from wine_quality.serving.workers import SharedState, Target

logger = logging.getLogger(__name__)


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
    # The loaded model the app scores with (the server's CSV path calls it too).
    model: PyFuncModel | None = field(default=None, repr=False, compare=False)
    # Scores the common JSON requests without MLflow's parser; None for other kinds of model.
    fast: FastScorer | None = field(default=None, repr=False, compare=False)

    @property
    def model_uri(self) -> str:
        """The pinned URI that was loaded (not the alias, which may have moved since)."""
        return config.model_uri(self.version, self.name)

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


class ModelSlot:
    """The single reference to what is served, and the only code that replaces it.

    ``current`` is read once per request and replaced by one assignment on the event loop, so a
    reader gets either the old ``ServedModel`` or the new one, never a mix. ``sync`` holds a lock
    for its whole resolve-load-swap sequence, so concurrent reloads (admin, poll, retry) run one
    after another.
    """

    def __init__(self, settings: ServerSettings, shared: SharedState | None = None) -> None:
        self.settings = settings
        # The other workers' agreement; None in a single-worker server.
        self.shared = shared
        self.generation = 0  # The newest shared target this worker serves.
        self.name, self.alias = parse_model_uri(settings.model_uri)
        self.current: ServedModel | None = None
        self.reason = "starting: no model loaded yet"
        self._lock = asyncio.Lock()
        self._failed_version: str | None = None  # Logged with its traceback once, not per retry.
        # Set once this worker serves a version or its first attempt ended without one.
        self.settled = asyncio.Event()

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
            # When this worker began to ask: what orders its answer against the other workers'.
            resolved_at = time.clock_gettime(time.CLOCK_MONOTONIC)
            try:
                target = await asyncio.to_thread(self._resolve)
            except Exception as exc:
                reason = (
                    f"cannot resolve {self.settings.model_uri} at {self.settings.tracking_uri}:"
                    f" {short(exc, 200)}"
                )
                self._set_reason(reason)
                raise RegistryUnavailable(reason) from exc
            target_version = str(target.version) if target is not None else None
            if requested is not None and requested != target_version:
                raise VersionConflict(
                    f"alias {self.alias!r} points to version {target_version}, not {requested};"
                    " the server serves only the alias target"
                )
            unchanged = SyncResult(previous_version, previous_version, changed=False)
            if target is None:
                self._set_reason(f"no version of {self.name} has the alias {self.alias!r}")
                if not await self._publish(None, resolved_at):
                    return unchanged
                if previous is not None:
                    # The server serves the alias target, and there is none any more.
                    self.current = None
                    logger.warning(
                        "unloaded %s version %s: alias removed", self.name, previous_version
                    )
                self.record_status()
                return SyncResult(None, previous_version, changed=previous is not None)
            if target_version == previous_version:
                if await self._publish(target_version, resolved_at):
                    self.record_status()
                return unchanged
            try:
                served = await asyncio.to_thread(self._load, target)
            # A model's own code may raise anything while loading; the old version stays served.
            except Exception as exc:
                raise self._load_failed(target_version, exc) from exc
            if not await self._publish(target_version, resolved_at):
                served.workdir.cleanup()  # A newer answer is published; the follow loop takes it.
                return unchanged
            self.current = served  # The swap: one assignment, on the event loop.
            self._failed_version = None
            self.record_status()
            logger.info(
                "serving %s version %s (run %s, was %s)",
                self.name, served.version, served.run_id, previous_version,
            )  # fmt: skip
            return SyncResult(served.version, previous_version, changed=True)

    def _load_failed(self, version: str, exc: Exception) -> LoadFailed:
        """The error for a failed load, logged with its traceback once per version."""
        message = f"could not load version {version}: {short(exc, 200)}"
        if self._failed_version != version:
            logger.error("loading %s version %s failed", self.name, version, exc_info=exc)
        else:
            logger.warning("%s", message)
        self._failed_version = version
        if self.current is None:
            self._set_reason(message)
        return LoadFailed(message)

    async def _publish(self, version: str | None, resolved_at: float) -> bool:
        """Whether this worker may serve ``version``: always alone; with other workers, only if
        no resolution that began later named another version (see ``workers``)."""
        if self.shared is None:
            return True
        target = await asyncio.to_thread(self.shared.publish, version, resolved_at)
        if target.version != version:
            return False
        self.generation = target.generation
        return True

    async def adopt(self, target: Target) -> None:
        """Serve what another worker published: its pinned version, not the alias's answer now.

        Raises:
            LoadFailed: The version could not be loaded; what is served stays, and the status
                file says why (the reload that waits for this worker names it).
        """
        async with self._lock:
            if target.generation <= self.generation:
                return  # This worker published it, or already follows a newer one.
            served_version = self.current.version if self.current else None
            if target.version is None and self.current is not None:
                self.current = None
                self._set_reason(f"no version of {self.name} has the alias {self.alias!r}")
                logger.warning("unloaded %s version %s: alias removed", self.name, served_version)
            elif target.version is not None and target.version != served_version:
                try:
                    pinned = await asyncio.to_thread(self._pinned, target.version)
                    served = await asyncio.to_thread(self._load, pinned)
                except Exception as exc:
                    error = self._load_failed(target.version, exc)
                    self.record_status(error=str(error))
                    raise error from exc
                if await self._overtaken(target):
                    served.workdir.cleanup()  # Already outdated: never swap to an older target.
                    return
                self.current = served  # The swap, as in ``sync``.
                self._failed_version = None
                self.settled.set()
                logger.info(
                    "serving %s version %s (published by worker %s, was %s)",
                    self.name, served.version, target.by_pid, served_version,
                )  # fmt: skip
            self.generation = target.generation
            self.record_status()

    async def _overtaken(self, target: Target) -> bool:
        """Whether a newer target names another version: then never swap to this older one."""
        if self.shared is None:
            return False
        newest = await asyncio.to_thread(self.shared.read_target)
        return (
            newest is not None
            and newest.generation > target.generation
            and newest.version != target.version
        )

    def record_status(self, error: str | None = None) -> None:
        """Tell the other workers what this one serves (no-op in a single-worker server)."""
        if self.shared is not None:
            version = self.current.version if self.current else None
            self.shared.write_status(version, self.generation, error)

    def _pinned(self, version: str) -> ModelVersion:
        from mlflow import MlflowClient

        uri = self.settings.tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(
            self.name, version
        )

    def _resolve(self) -> ModelVersion | None:
        from mlflow import MlflowClient

        uri = self.settings.tracking_uri
        try:
            return MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
                self.name, self.alias
            )
        except Exception as exc:
            if is_not_found(exc):
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
                artifact_uri=config.model_uri(version, self.name),
                dst_path=workdir.name,
                tracking_uri=uri,
                registry_uri=uri,
            )
            model = mlflow.pyfunc.load_model(local)
            app = scoring_server.init(model)
            fast = FastScorer.for_model(model)
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
            model=model,
            fast=fast,
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
            self.settled.set()
            delay = settings.poll_seconds if polling else settings.retry_seconds
            await asyncio.sleep(delay)
