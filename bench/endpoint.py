"""The endpoint, side by side: the project's model server vs stock ``mlflow models serve``.

Both serve the same registered version: the project server is the one already running (``make
up``); the stock server is started here with ``--env-manager local`` on a free loopback port and
stopped at the end. ``hey`` (Debian's package) sends a bounded number of requests at each
concurrency, for one row and for 100 rows; the servers take turns within each repetition, so both
see the same machine. Per step the JSON records the median of the repetitions and their min-max
for p50, p99 and requests/s, the ratio project/stock, and the load average around each run (the
machine may be shared: figures without it mean little).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from bench.report import RESULTS_MD, put_section
from wine_quality.config import FEATURES, MODEL_NAME, RUNBOOK_PAYLOAD

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
ROWS = (1, 100)
CONCURRENCY = (1, 8)


@dataclass(frozen=True)
class Plan:
    """How much load: requests per run, repetitions, and a time bound per run."""

    requests: int = 2000
    repetitions: int = 5
    seconds_limit: float = 120.0


def payload(rows: int) -> bytes:
    """``rows`` copies of the runbook's row, as ``dataframe_split``."""
    row = RUNBOOK_PAYLOAD["dataframe_split"]["data"][0]
    return json.dumps(
        {"dataframe_split": {"columns": list(FEATURES), "data": [row] * rows}}
    ).encode()


def hey(url: str, body: Path, *, requests_: int, concurrency: int, seconds: float) -> dict:
    """One ``hey`` run: latency percentiles (ms), requests/s and failures, from its CSV output.

    hey's CSV gives each latency to 0.1 ms; a request that got no answer counts as failed.

    Raises:
        ValueError: ``url`` is not on loopback.
    """
    if urlparse(url).hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"load is only ever sent to loopback, not to {url}")
    requests_ -= requests_ % concurrency  # hey sends n // c per worker: ask for what it sends.
    # One core for hey: the other is the server's (there are two).
    cmd = ["hey", "-n", str(requests_), "-c", str(concurrency), "-cpus", "1", "-m", "POST",
           "-T", "application/json", "-D", str(body), "-t", "10", "-o", "csv", url]  # fmt: skip
    load_before = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds, check=True)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    latencies = sorted(float(r["response-time"]) * 1000 for r in rows)
    ends = [float(r["offset"]) + float(r["response-time"]) for r in rows]
    duration = max(ends) - min(float(r["offset"]) for r in rows) if rows else 0.0
    failed = sum(1 for r in rows if r["status-code"] != "200") + requests_ - len(rows)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else []
    return {
        "requests": len(rows),
        "failed": failed,
        "rps": round(len(rows) / duration, 1) if duration else 0.0,
        "p50_ms": round(cuts[49], 3) if cuts else None,
        "p99_ms": round(cuts[98], 3) if cuts else None,
        "load_average": round((load_before + os.getloadavg()[0]) / 2, 2),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_stock(tracking_uri: str, version: str, log: Path) -> tuple[subprocess.Popen, str]:
    """``mlflow models serve`` of ``version`` on a free loopback port, once it answers /ping."""
    port = free_port()
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [mlflow, "models", "serve", "-m", f"models:/{MODEL_NAME}/{version}",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited: see {log}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(process)
    raise RuntimeError(f"mlflow models serve did not answer within 180 s: see {log}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (uvicorn runs under it), then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
            process.wait(wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def summarise(runs: list[dict]) -> dict[str, Any]:
    """Median and min-max over repetitions of each figure, plus the load averages seen."""
    out: dict[str, Any] = {"repetitions": len(runs), "failed": sum(r["failed"] for r in runs)}
    for key in ("p50_ms", "p99_ms", "rps"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = {
            "median": round(statistics.median(values), 3) if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
        }
    out["load_average"] = [r["load_average"] for r in runs]
    return out


def measure(servers: dict[str, str], plan: Plan, workdir: Path) -> dict[str, Any]:
    """Every (rows, concurrency) step on every server, the servers interleaved per repetition."""
    steps: dict[str, Any] = {}
    for rows in ROWS:
        body = workdir / f"rows-{rows}.json"
        body.write_bytes(payload(rows))
        for concurrency in CONCURRENCY:
            runs: dict[str, list[dict]] = {name: [] for name in servers}
            for url in servers.values():  # Warm-up: the first requests fill caches and pools.
                hey(f"{url}/invocations", body, requests_=max(concurrency, 50),
                    concurrency=concurrency, seconds=plan.seconds_limit)  # fmt: skip
            for _ in range(plan.repetitions):
                for name, url in servers.items():
                    run = hey(f"{url}/invocations", body, requests_=plan.requests,
                              concurrency=concurrency, seconds=plan.seconds_limit)  # fmt: skip
                    runs[name].append(run)
            step = {name: summarise(r) for name, r in runs.items()}
            project, stock = step["project"], step.get("stock")
            if stock and stock["rps"]["median"] and project["rps"]["median"]:
                step["ratio_rps_project_over_stock"] = round(
                    project["rps"]["median"] / stock["rps"]["median"], 2
                )
                step["ratio_p50_stock_over_project"] = round(
                    stock["p50_ms"]["median"] / project["p50_ms"]["median"], 2
                )
            steps[f"rows_{rows}_c{concurrency}"] = step
            print(f"rows={rows} c={concurrency}", json.dumps(step), flush=True)
    return steps


def run(project_url: str, tracking_uri: str, plan: Plan, out: Path) -> dict[str, Any]:
    """Measure the project server at ``project_url`` against stock serving of its version.

    Returns:
        The document written to ``out``.

    Raises:
        RuntimeError: The project server serves nothing, or the stock server did not start.
    """
    version = requests.get(f"{project_url}/served-model", timeout=10).json().get("version")
    if not version:
        raise RuntimeError(f"{project_url} serves no model: make run first")
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        workdir = Path(tmp)
        process, stock_url = start_stock(tracking_uri, version, workdir / "stock.log")
        try:
            steps = measure({"project": project_url, "stock": stock_url}, plan, workdir)
        finally:
            stop(process)
    document = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "model": {"name": MODEL_NAME, "version": version},
        "load_generator": "hey (loopback, -cpus 1)",
        "plan": plan.__dict__,
        "steps": steps,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    return document


def write_markdown(document: dict[str, Any], path: Path) -> None:
    """The endpoint's table into its section of ``path`` (bench/results.md)."""
    lines = [
        "## Endpoint: the project server vs stock `mlflow models serve`"
        " (`python -m bench endpoint`)",
        "",
        f"Measured {document['measured_at']} on {document['machine']['cpus']} CPUs, model"
        f" {document['model']['name']} v{document['model']['version']}, load generator"
        f" {document['load_generator']}, {document['plan']['requests']} requests per run,"
        f" {document['plan']['repetitions']} runs per cell, the two servers alternating. Median"
        " (min-max) of the runs.",
        "",
        "| rows, concurrency | server | req/s | p50 ms | p99 ms | failed |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]

    def spread(figure: dict[str, float]) -> str:
        return f"{figure['median']:g} ({figure['min']:g}-{figure['max']:g})"

    for name, step in document["steps"].items():
        rows, concurrency = name.removeprefix("rows_").split("_c")
        for server in ("project", "stock"):
            cell = step[server]
            lines.append(
                f"| {rows}, {concurrency} | {server} | {spread(cell['rps'])} |"
                f" {spread(cell['p50_ms'])} | {spread(cell['p99_ms'])} | {cell['failed']} |"
            )
        lines.append(
            f"| {rows}, {concurrency} | **project / stock** |"
            f" **{step['ratio_rps_project_over_stock']:g}x** |"
            f" stock p50 / project p50: {step['ratio_p50_stock_over_project']:g}x | | |"
        )
    put_section(path, "endpoint", lines)


def main() -> int:
    """``python -m bench endpoint``: settings from WINE_MODEL_SERVER_URL, MLFLOW_TRACKING_URI,
    WINE_BENCH_REQUESTS (per run, default 2000) and WINE_BENCH_REPETITIONS (default 5)."""
    plan = Plan(
        requests=int(os.environ.get("WINE_BENCH_REQUESTS", Plan.requests)),
        repetitions=int(os.environ.get("WINE_BENCH_REPETITIONS", Plan.repetitions)),
    )
    out = Path(__file__).parent / "results" / "endpoint.json"
    document = run(
        os.environ.get("WINE_MODEL_SERVER_URL", "http://127.0.0.1:1234").rstrip("/"),
        os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
        plan,
        out,
    )
    write_markdown(document, RESULTS_MD)
    print(f"wrote {out} and {RESULTS_MD}")
    failed = sum(s[n]["failed"] for s in document["steps"].values() for n in ("project", "stock"))
    return 1 if failed else 0
