"""``python -m wine_quality.serving``: run the model server under uvicorn.

Only one worker is supported. Each process holds its own loaded model and swaps it on its own:
with several workers a ``POST /admin/reload`` would reach one of them while the others kept
serving the old version, and ``/served-model`` would depend on which one answered. To scale,
run several servers behind a balancer and reload each.

Settings other than the bind address come from the environment (see ``ServerSettings``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

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
        default=1,
        help="must be 1: the served model and its swap live in one process",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(argv)
    if args.workers != 1:
        parser.error(
            "--workers must be 1: each worker would hold and swap its own model, so a reload"
            " would reach only one of them; run more servers behind a balancer instead"
        )
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

    try:
        settings = ServerSettings.from_env()
    except ValueError as exc:
        print(f"wine_quality.serving: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        workers=1,
        log_level=args.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
