"""``python -m wine_quality.serving``: run the model server under uvicorn.

``--workers N`` (default ``WINE_MODEL_SERVER_WORKERS``, else 1) runs N uvicorn worker processes
on one socket, to use more cores. Each holds its own model; they agree on the version through a
state directory this process creates for them and removes at exit
(:mod:`wine_quality.serving.workers`), so a reload reaching any one of them reaches all. With one
worker the app runs in this process, with no shared state.

Settings other than the bind address come from the environment (see ``ServerSettings``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile

# The server retries loading by itself every few seconds, so MLflow's default HTTP retries
# (7, with exponential back-off: about 4 minutes) would only delay readiness and make a reload
# hang when the tracking server is down. A progress bar per download is noise in a service log.
# Explicit settings in the environment still win.
_MLFLOW_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# In-flight requests get this long to finish after SIGTERM.
GRACEFUL_SHUTDOWN_SECONDS = 20
WORKERS_ENV = "WINE_MODEL_SERVER_WORKERS"


def _default_workers() -> int:
    raw = os.environ.get(WORKERS_ENV, "").strip()
    try:
        return int(raw) if raw else 1
    except ValueError:
        return 0  # Refused below with the variable's name.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m wine_quality.serving",
        description="Serve the production version of the wine model, reloadable in place.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1234, help="port (default: 1234)")
    parser.add_argument(
        "--workers",
        type=int,
        default=_default_workers(),
        help=f"worker processes, each serving the same version (default: ${WORKERS_ENV} or 1)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers (or {WORKERS_ENV}) must be a whole number of at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM (uvicorn finishes in-flight requests first)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name, value in _MLFLOW_DEFAULTS.items():
        os.environ.setdefault(name, value)

    import uvicorn

    from wine_quality.serving.app import create_app
    from wine_quality.serving.settings import ServerSettings
    from wine_quality.serving.workers import STATE_DIR_ENV

    try:
        settings = ServerSettings.from_env()  # Checked here, so a bad value stops the start.
    except ValueError as exc:
        print(f"wine_quality.serving: {exc}", file=sys.stderr)
        return 2
    common = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }
    if args.workers == 1:
        uvicorn.run(create_app(settings), workers=1, **common)
        return 0
    # The workers are spawned processes: they find the directory in the environment they inherit.
    state = tempfile.mkdtemp(prefix="wine-model-server-")
    os.environ[STATE_DIR_ENV] = state
    try:
        uvicorn.run(
            "wine_quality.serving.workers:create_worker_app",
            factory=True,
            workers=args.workers,
            **common,
        )
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
