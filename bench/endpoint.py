"""The endpoint, side by side: the project's model server vs the two ways a user serves by hand.

Three kinds of server answer the same one-row and 100-row requests:

- ``project``: the project's server, already running (``make up``); more variants of it (another
  worker count, say) can be named in WINE_BENCH_PROJECT_URLS.
- ``stock``: ``mlflow models serve`` of the same registered version (the project's pyfunc).
- ``sklearn``: ``mlflow models serve`` of a plain ``mlflow.sklearn`` model of that version's own
  fitted pipeline, saved here with a signature inferred from float64 features: the simplest
  thing a user would deploy by hand.

Both baselines run with ``--env-manager local`` and one worker on a free loopback port and are
stopped at the end. Before any load, all servers must return the same prediction for the one-row
payload: a bench that compares different models is wrong. ``hey`` (Debian's package) sends a
bounded number of requests at each concurrency; the servers take turns within each repetition, so
all see the same machine. Per step the JSON keeps every run's figures, their median and min-max,
the load average around each run (the machine may be shared: figures without it mean little) and
the ratios of each project server over each baseline, checked against the issue's targets.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from bench import cores
from bench.report import RESULTS_MD, put_section
from wine_quality.core.config import FEATURES, MODEL_NAME, RUNBOOK_PAYLOAD, model_uri

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
ROWS = (1, 100)
CONCURRENCY = (1, 8)
PROJECT = "project"
# The one-worker project server the bench starts itself, next to the stack's.
ONE_WORKER = "project-1w"
# The baselines, in the order they are measured, each with the target for
# project requests/s over its requests/s, measured in one run.
TARGETS: dict[str, float] = {"stock": 5.0, "sklearn": 2.0}
# The servers must agree on the one-row prediction to this much before anything is measured.
AGREEMENT = 1e-9
DEFAULT_SERVER_URL = "http://127.0.0.1:1234"
# The runbook's row holds ints (29, 75); the plain sklearn model's inferred schema is double and
# MLflow refuses int64 -> double, so every server gets the same values as floats.
FLOAT_ROW = [float(value) for value in RUNBOOK_PAYLOAD["dataframe_split"]["data"][0]]


@dataclass(frozen=True)
class Plan:
    """How much load: requests per run, repetitions, and a time bound per run."""

    requests: int = 2000
    repetitions: int = 5
    seconds_limit: float = 120.0
    # Length of one wrk run of the scaling measurement (project servers only).
    scaling_seconds: float = 5.0


def payload(rows: int) -> bytes:
    """``rows`` copies of the runbook's row (its values as floats), as ``dataframe_split``."""
    return json.dumps(
        {"dataframe_split": {"columns": list(FEATURES), "data": [FLOAT_ROW] * rows}}
    ).encode()


def project_servers(env: Mapping[str, str]) -> dict[str, str]:
    """The project servers to measure, by name, ``project`` first.

    WINE_BENCH_PROJECT_URLS (``project=http://127.0.0.1:1234,project-2w=http://...``) names
    them all; without it the one project server is at WINE_MODEL_SERVER_URL.

    Raises:
        ValueError: The list is malformed, repeats a name, takes a baseline's name or has no
            ``project``.
    """
    spec = env.get("WINE_BENCH_PROJECT_URLS", "").strip()
    if not spec:
        return {PROJECT: env.get("WINE_MODEL_SERVER_URL", DEFAULT_SERVER_URL).rstrip("/")}
    servers: dict[str, str] = {}
    for item in spec.split(","):
        name, sep, url = (part.strip() for part in item.partition("="))
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ValueError(
                f"WINE_BENCH_PROJECT_URLS: expected name=http://host:port, got {item!r}"
            )
        if name in servers or name in TARGETS:
            raise ValueError(f"WINE_BENCH_PROJECT_URLS: name {name!r} is repeated or reserved")
        servers[name] = url.rstrip("/")
    if PROJECT not in servers:
        raise ValueError(f"WINE_BENCH_PROJECT_URLS must name a {PROJECT!r} server: {spec!r}")
    return {PROJECT: servers.pop(PROJECT), **servers}


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
    load_before, cpu_before = os.getloadavg()[0], cores.children_cpu_seconds()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds, check=True)
    cpu = cores.children_cpu_seconds() - cpu_before
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
        # What the load generator itself cost: the cores it took from the server.
        "client_cpu_ms_per_request": round(cpu * 1000 / len(rows), 4) if rows else None,
        "load_average": round((load_before + os.getloadavg()[0]) / 2, 2),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_mlflow_serve(model: str, tracking_uri: str, log: Path) -> tuple[subprocess.Popen, str]:
    """``mlflow models serve -m model`` (a URI or a local folder) on a free loopback port, once
    it answers /ping."""
    port = free_port()
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [mlflow, "models", "serve", "-m", model,
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return requests.get(f"{url}/ping", timeout=2).status_code == 200

    return spawn_until(cmd, env, log, ready, f"mlflow models serve of {model}"), url


def spawn_until(
    cmd: list[str], env: Mapping[str, str], log: Path, ready: Callable[[], bool], what: str
) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (output to ``log``) and return it once
    ``ready()`` is true; stop it and raise if it exits or is not ready within 180 s."""
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: see {log}")
        try:
            if ready():
                return process
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    stop(process)
    raise RuntimeError(f"{what} was not ready within 180 s: see {log}")


def start_project_server(
    tracking_uri: str, log: Path, *, workers: int = 1
) -> tuple[subprocess.Popen, str]:
    """Another project server (``python -m wine_quality.serving``) with ``workers`` workers on
    a free loopback port, once it serves a version: the same code at another worker count.

    It follows the production alias as the stack's does, without a reload token."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "WINE_MODEL_SERVER_TOKEN"}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[1] / "include"), env.get("PYTHONPATH"))
        if p
    )  # fmt: skip
    cmd = [sys.executable, "-m", "wine_quality.serving", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return bool(requests.get(f"{url}/served-model", timeout=2).json().get("version"))

    return spawn_until(cmd, env, log, ready, f"the {workers}-worker project server"), url


def worker_counts(projects: Mapping[str, str]) -> dict[str, int]:
    """How many worker processes each project server reports (1 when it lists none)."""
    return {
        name: len(requests.get(f"{url}/served-model", timeout=10).json().get("workers") or [1])
        for name, url in projects.items()
    }


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


def save_sklearn_model(tracking_uri: str, version: str, directory: Path) -> Path:
    """A plain ``mlflow.sklearn`` model of ``version``'s own fitted pipeline, in ``directory``.

    The pipeline comes from the skops file the registered version's wrapper ships, so both
    predict the same; the signature is inferred, as a user would, from the features as float64.

    Raises:
        RuntimeError: The version's artifacts hold no single pipeline file.
    """
    import mlflow.artifacts
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    from wine_quality.core.tracking import using
    from wine_quality.model.wrapper import PIPELINE_FILENAME, load_pipeline

    # MLflow resolves a models:/ URI with the process-wide registry URI whatever is passed in.
    with using(tracking_uri):
        downloaded = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri(version), dst_path=str(directory / "registered"),
                tracking_uri=tracking_uri, registry_uri=tracking_uri,
            )
        )  # fmt: skip
    found = sorted(downloaded.rglob(PIPELINE_FILENAME))
    if len(found) != 1:
        raise RuntimeError(f"version {version} ships {len(found)} {PIPELINE_FILENAME} files")
    pipeline = load_pipeline(found[0])
    features = pd.DataFrame([FLOAT_ROW], columns=list(FEATURES), dtype="float64")
    signature = infer_signature(features, np.asarray(pipeline.predict(features), dtype="float64"))
    out = directory / "sklearn-model"
    mlflow.sklearn.save_model(pipeline, str(out), signature=signature)
    return out


def predictions(servers: Mapping[str, str]) -> dict[str, float]:
    """Each server's prediction for the one-row payload.

    Raises:
        RuntimeError: A server did not answer it with one prediction.
    """
    out = {}
    for name, url in servers.items():
        response = requests.post(
            f"{url}/invocations", data=payload(1),
            headers={"Content-Type": "application/json"}, timeout=30,
        )  # fmt: skip
        if response.status_code != 200:
            raise RuntimeError(f"{name} answered {response.status_code}: {response.text[:300]}")
        answer = response.json().get("predictions")
        if not isinstance(answer, list) or len(answer) != 1:
            raise RuntimeError(f"{name} answered {response.text[:300]} for one row")
        value = answer[0]
        out[name] = float(value[0] if isinstance(value, list) else value)
    return out


def check_agreement(found: Mapping[str, float], tolerance: float = AGREEMENT) -> None:
    """Refuse to measure servers that do not serve the same model.

    Raises:
        RuntimeError: Two predictions differ by more than ``tolerance``.
    """
    if max(found.values()) - min(found.values()) > tolerance:
        raise RuntimeError(
            f"the servers predict differently for the same row: {dict(found)}; they do not"
            " serve the same model, so comparing them means nothing"
        )


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
    cpu = [r["client_cpu_ms_per_request"] for r in runs if r.get("client_cpu_ms_per_request")]
    out["client_cpu_ms_per_request"] = round(statistics.median(cpu), 4) if cpu else None
    out["load_average"] = [r["load_average"] for r in runs]
    return out


def ratios(step: Mapping[str, Any], projects: Sequence[str], baselines: Sequence[str]) -> dict:
    """Each project server over each baseline: requests/s, and p50 the other way round.

    Keys are ``ratio_rps_<project>_over_<baseline>`` and ``ratio_p50_<baseline>_over_<project>``;
    a ratio whose figures are missing or zero is None.
    """

    def ratio(numerator: float | None, denominator: float | None) -> float | None:
        return round(numerator / denominator, 2) if numerator and denominator else None

    out: dict[str, float | None] = {}
    for project in projects:
        mine = step[project]
        for baseline in baselines:
            theirs = step[baseline]
            out[f"ratio_rps_{project}_over_{baseline}"] = ratio(
                mine["rps"]["median"], theirs["rps"]["median"]
            )
            out[f"ratio_p50_{baseline}_over_{project}"] = ratio(
                theirs["p50_ms"]["median"], mine["p50_ms"]["median"]
            )
    return out


def measure(
    servers: Mapping[str, str], projects: Sequence[str], plan: Plan, workdir: Path
) -> dict[str, Any]:
    """Every (rows, concurrency) step on every server, the servers interleaved per repetition.

    Args:
        servers: Name -> base URL of every server, in the order they take turns.
        projects: Which of them are project servers; the others are baselines.
        plan: How much load.
        workdir: Where the request bodies are written.

    Returns:
        Per step, each server's summary with its runs, then the ratios.
    """
    baselines = [name for name in servers if name not in projects]
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
            step: dict[str, Any] = {name: {**summarise(r), "runs": r} for name, r in runs.items()}
            step.update(ratios(step, projects, baselines))
            steps[f"rows_{rows}_c{concurrency}"] = step
            print(f"rows={rows} c={concurrency}", json.dumps(_without_runs(step)), flush=True)
    return steps


def _without_runs(step: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: {f: v for f, v in cell.items() if f != "runs"} if isinstance(cell, dict) else cell
        for k, cell in step.items()
    }


def served_version(projects: Mapping[str, str]) -> str:
    """The version every project server serves.

    Raises:
        RuntimeError: One serves nothing, or they serve different versions.
    """
    versions = {
        name: requests.get(f"{url}/served-model", timeout=10).json().get("version")
        for name, url in projects.items()
    }
    if not all(versions.values()):
        raise RuntimeError(f"a project server serves no model ({versions}): make run first")
    if len(set(versions.values())) != 1:
        raise RuntimeError(f"the project servers serve different versions: {versions}")
    return next(iter(versions.values()))


def run(
    projects: Mapping[str, str],
    tracking_uri: str,
    plan: Plan,
    out: Path,
    *,
    one_worker: bool = False,
) -> dict[str, Any]:
    """Measure the project servers against stock and plain-sklearn serving of their version.

    Args:
        projects: Name -> URL of each project server (see :func:`project_servers`).
        tracking_uri: The MLflow server that holds the registered version.
        plan: How much load.
        out: Where the JSON document is written.
        one_worker: Also start a one-worker project server (``project-1w``) and measure it in
            the same turns: what the stack's workers add at concurrency 8.

    Returns:
        The document written to ``out``.

    Raises:
        RuntimeError: A project server serves nothing, a baseline did not start, or the servers
            do not agree on the one-row prediction.
    """
    projects = dict(projects)
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        workdir = Path(tmp)
        started: list[subprocess.Popen] = []
        try:
            if one_worker:
                process, url = start_project_server(tracking_uri, workdir / "project-1w.log")
                started.append(process)
                projects[ONE_WORKER] = url
            version = served_version(projects)
            workers = worker_counts(projects)
            sklearn_dir = save_sklearn_model(tracking_uri, version, workdir)
            baselines = {"stock": model_uri(version), "sklearn": str(sklearn_dir)}
            servers = dict(projects)
            for name, model in baselines.items():
                process, url = start_mlflow_serve(model, tracking_uri, workdir / f"{name}.log")
                started.append(process)
                servers[name] = url
            agreed = predictions(servers)
            check_agreement(agreed)
            steps = measure(servers, list(projects), plan, workdir)
            scaled = None
            if len(set(workers.values())) > 1:  # Project servers of different worker counts.
                scaled = cores.measure(
                    projects, workdir / "rows-1.json", workdir,
                    seconds=plan.scaling_seconds, repetitions=plan.repetitions,
                    summarise=summarise,
                )  # fmt: skip
        finally:
            for process in started:
                stop(process)
    document = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "model": {"name": MODEL_NAME, "version": version},
        "servers": {
            **{
                name: {"role": "project", "url": url, "workers": workers[name]}
                for name, url in projects.items()
            },
            "stock": {"role": "baseline", "serves": baselines["stock"]},
            "sklearn": {"role": "baseline", "serves": f"mlflow.sklearn model of v{version}"},
        },
        "payload_row": FLOAT_ROW,
        "predictions": agreed,
        "targets": TARGETS,
        "load_generator": "hey (loopback, -cpus 1)",
        "plan": plan.__dict__,
        "steps": steps,
    }
    if scaled is not None:
        document["scaling"] = {
            "load_generator": "wrk -t1 (loopback)",
            "seconds": plan.scaling_seconds,
            "repetitions": plan.repetitions,
            "workers": workers,
            "steps": scaled,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    return document


def verdicts(document: Mapping[str, Any]) -> list[str]:
    """One line per (project server, baseline): whether its target is met at every step."""
    lines = []
    projects = [n for n, s in document["servers"].items() if s["role"] == "project"]
    for project in projects:
        for baseline, target in document["targets"].items():
            key = f"ratio_rps_{project}_over_{baseline}"
            short = {
                name: step[key]
                for name, step in document["steps"].items()
                if step[key] is None or step[key] < target
            }
            head = f"- {project} / {baseline} >= {target:g}x requests/s:"
            if not short:
                lowest = min(step[key] for step in document["steps"].values())
                lines.append(f"{head} **met** at every step (lowest {lowest:g}x).")
            else:
                missed = ", ".join(
                    f"{_step_label(name)} ({'no figure' if r is None else f'{r:g}x'})"
                    for name, r in short.items()
                )
                lines.append(f"{head} **not met** at {missed}.")
    return lines


def scaling(document: Mapping[str, Any]) -> list[str]:
    """How each project server scales from concurrency 1 to 8 (one row), and what its workers
    add over the one-worker server at concurrency 8."""
    steps, servers = document["steps"], document["servers"]
    if "rows_1_c1" not in steps or "rows_1_c8" not in steps:
        return []
    lines = []
    for name, server in servers.items():
        if server["role"] != "project":
            continue
        c1, c8 = (steps[f"rows_1_c{c}"][name]["rps"]["median"] for c in (1, 8))
        line = (
            f"- {name} ({server.get('workers', 1)} worker(s)), hey: one row, concurrency 8 / 1:"
            f" {c8 / c1:.2f}x requests/s"
            if c1 and c8
            else f"- {name}: no figure"
        )
        one = steps["rows_1_c8"].get(ONE_WORKER, {}).get("rps", {}).get("median")
        if name != ONE_WORKER and one and c8:
            line += f"; over {ONE_WORKER} at concurrency 8: {c8 / one:.2f}x"
        lines.append(line + ".")
    return lines


def _step_label(name: str) -> str:
    rows, concurrency = name.removeprefix("rows_").split("_c")
    return f"{rows} rows, concurrency {concurrency}"


def render(document: Mapping[str, Any]) -> list[str]:
    """The endpoint's section of bench/results.md: the table, the ratios, the targets."""
    servers = document["servers"]
    projects = [n for n, s in servers.items() if s["role"] == "project"]
    targets = document["targets"]
    lines = [
        "## Endpoint: the project server vs stock `mlflow models serve` and a plain"
        " `mlflow.sklearn` model (`python -m bench endpoint`)",
        "",
        f"Measured {document['measured_at']} on {document['machine']['cpus']} CPUs, model"
        f" {document['model']['name']} v{document['model']['version']}, load generator"
        f" {document['load_generator']}, {document['plan']['requests']} requests per run,"
        f" {document['plan']['repetitions']} runs per cell, the servers"
        f" ({', '.join(servers)}) taking turns. Median (min-max) of the runs.",
        "",
        "`stock` serves the registered version (the project's pyfunc); `sklearn` serves that"
        " version's own fitted pipeline saved with `mlflow.sklearn.save_model` and a signature"
        " inferred from float64 features, the simplest thing a user would deploy by hand. Both"
        " run `mlflow models serve --env-manager local -w 1`. The runbook's row holds ints"
        " (29, 75) and the sklearn model's schema is double, so every server gets the same row"
        " with its values as floats; before the load all servers gave the same prediction"
        f" ({_agreed(document['predictions'])}).",
        "",
        "Targets (the issue's, requests/s in one run): "
        + ", ".join(f"project / {b} >= {t:g}x" for b, t in targets.items())
        + ".",
        "",
        *verdicts(document),
        *scaling(document),
        "",
        "| rows, concurrency | server | req/s | p50 ms | p99 ms | failed |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]

    def spread(figure: dict[str, float | None]) -> str:
        if figure["median"] is None:
            return "-"
        return f"{figure['median']:g} ({figure['min']:g}-{figure['max']:g})"

    def times(value: float | None) -> str:
        return "-" if value is None else f"{value:g}x"

    for name, step in document["steps"].items():
        rows, concurrency = name.removeprefix("rows_").split("_c")
        for server in servers:
            cell = step[server]
            lines.append(
                f"| {rows}, {concurrency} | {server} | {spread(cell['rps'])} |"
                f" {spread(cell['p50_ms'])} | {spread(cell['p99_ms'])} | {cell['failed']} |"
            )
        for project in projects:
            for baseline, target in targets.items():
                rps = step[f"ratio_rps_{project}_over_{baseline}"]
                met = "met" if rps is not None and rps >= target else "not met"
                lines.append(
                    f"| {rows}, {concurrency} | **{project} / {baseline}** | **{times(rps)}** |"
                    f" {baseline} p50 / {project} p50:"
                    f" {times(step[f'ratio_p50_{baseline}_over_{project}'])} |"
                    f" target >= {target:g}x: {met} | |"
                )
    return lines + cores.render(document)


def _agreed(found: Mapping[str, float]) -> str:
    values = sorted(found.values())
    return f"{values[0]:.12g}, spread {values[-1] - values[0]:.1e}"


def write_markdown(document: Mapping[str, Any], path: Path) -> None:
    """The endpoint's section of ``path`` (bench/results.md), replaced in place."""
    put_section(path, "endpoint", render(document))


def main() -> int:
    """``python -m bench endpoint``: settings from WINE_MODEL_SERVER_URL (or
    WINE_BENCH_PROJECT_URLS for several project servers), MLFLOW_TRACKING_URI,
    WINE_BENCH_REQUESTS (per run, default 2000), WINE_BENCH_REPETITIONS (default 5),
    WINE_BENCH_SCALING_SECONDS (one wrk run of the scaling measurement, default 5) and
    WINE_BENCH_ONE_WORKER (default 1: also start and measure a one-worker project server)."""
    plan = Plan(
        requests=int(os.environ.get("WINE_BENCH_REQUESTS", Plan.requests)),
        repetitions=int(os.environ.get("WINE_BENCH_REPETITIONS", Plan.repetitions)),
        scaling_seconds=float(os.environ.get("WINE_BENCH_SCALING_SECONDS", Plan.scaling_seconds)),
    )
    out = Path(__file__).parent / "results" / "endpoint.json"
    document = run(
        project_servers(os.environ),
        os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
        plan,
        out,
        # Unless the servers are named by hand, a one-worker server is measured alongside.
        one_worker=not os.environ.get("WINE_BENCH_PROJECT_URLS")
        and os.environ.get("WINE_BENCH_ONE_WORKER", "1") != "0",
    )
    write_markdown(document, RESULTS_MD)
    print(f"wrote {out} and {RESULTS_MD}")
    failed = sum(s[n]["failed"] for s in document["steps"].values() for n in document["servers"])
    scaled = document.get("scaling", {}).get("steps", {})
    failed += sum(cell["failed"] for step in scaled.values() for cell in step.values())
    return 1 if failed else 0
