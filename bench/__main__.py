"""``make bench``: load the running model server (make up / make run first) and record figures.

``python -m bench [load] [endpoint] [dag] [cycle]`` (default: all four, in that order):

Each writes its raw figures as JSON under bench/results/ and its section of bench/results.md, under
an environment section (commit, machine, versions).

- ``load`` writes bench/results/load.json: throughput and latency percentiles at each
  concurrency. Settings: WINE_MODEL_SERVER_URL (default http://127.0.0.1:1234),
  WINE_BENCH_SECONDS (default 20 per step).
- ``endpoint`` writes bench/results/endpoint.json and a section of bench/results.md: the project
  server vs stock ``mlflow models serve`` of the same version and vs a plain ``mlflow.sklearn``
  model of its pipeline, with ``hey``, and each project server's scaling with cores, with
  ``wrk`` (see :mod:`bench.endpoint` and :mod:`bench.cores`).
- ``dag`` writes bench/results/dag.json and a section of bench/results.md: ``airflow dags test``
  against the same steps in one plain process, per stage, and Airflow's own floor (see
  :mod:`bench.dag`).
- ``cycle`` writes bench/results/cycle.json and a section of bench/results.md: time and peak RSS
  of every stage of the DAG on data of growing size (see :mod:`bench.cycle`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.load import run_load
from bench.report import RESULTS_MD, put_section
from wine_quality.core.config import RUNBOOK_PAYLOAD


def load(
    url: str | None = None,
    seconds: float | None = None,
    out: Path = Path(__file__).parent / "results" / "load.json",
    md: Path = RESULTS_MD,
) -> int:
    """The project server at concurrency 1, 4 and 8 under :func:`bench.load.run_load`."""
    url = (url or os.environ.get("WINE_MODEL_SERVER_URL", "http://127.0.0.1:1234")).rstrip("/")
    seconds = seconds or float(os.environ.get("WINE_BENCH_SECONDS", "20"))
    print(f"load: {url} serves version {wait_for_version(url)}", flush=True)
    steps = {}
    for concurrency in (1, 4, 8):
        result = run_load(
            f"{url}/invocations", RUNBOOK_PAYLOAD, seconds=seconds, concurrency=concurrency,
            max_requests=200_000,
        )  # fmt: skip
        steps[f"concurrency_{concurrency}"] = result.summary()
        print(concurrency, json.dumps(steps[f"concurrency_{concurrency}"]))
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "seconds_per_step": seconds,
                "steps": steps,
            },
            indent=2,
        )
    )
    lines = [
        "## Load: the project server under a Python client (`python -m bench load`)",
        "",
        f"One run of {seconds:g} s per concurrency against {url}/invocations with the runbook's"
        " row, from `bench.load` (threads, one `requests` session each: the client the"
        " load-across-promotion test uses, slower than `hey`, so these are the server as a"
        " Python caller sees it; the comparisons are in the endpoint section).",
        "",
        "| concurrency | req/s | p50 ms | p95 ms | p99 ms | failed | versions served |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, step in steps.items():
        ms = step["latency_ms"]
        lines.append(
            f"| {name.removeprefix('concurrency_')} | {step['throughput_rps']:g} |"
            f" {ms['p50']:g} | {ms['p95']:g} | {ms['p99']:g} | {step['failed']} |"
            f" {', '.join(f'v{v}: {n}' for v, n in step['versions'].items())} |"
        )
    put_section(md, "load", lines)
    print(f"wrote {out} and {md}")
    return 1 if any(step["failed"] for step in steps.values()) else 0


def wait_for_version(url: str, timeout: float = 180.0) -> str:
    """The version the server at ``url`` serves, once it serves one (a server just started
    answers before its model is loaded, and every request until then would fail).

    Raises:
        RuntimeError: Nothing is served after ``timeout`` seconds.
    """
    import time

    import requests

    deadline, reason = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            served = requests.get(f"{url}/served-model", timeout=5).json()
            if served.get("version"):
                return str(served["version"])
            reason = served.get("reason") or "no version"
        except (requests.RequestException, ValueError) as exc:
            reason = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"{url} serves no model after {timeout:g} s ({reason}): make run first")


PACKAGES = ("mlflow", "apache-airflow", "scikit-learn", "pandas", "numpy", "pyarrow",
            "great-expectations", "scipy", "uvicorn", "starlette")  # fmt: skip


def environment() -> None:
    """What the figures were measured on: the section at the top of bench/results.md."""
    import subprocess
    from importlib import metadata

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
        cwd=Path(__file__).parent,
    ).stdout.strip()  # fmt: skip
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in PACKAGES)
    put_section(
        RESULTS_MD,
        "environment",
        [
            "## Environment",
            "",
            f"Run of {datetime.now(UTC).isoformat(timespec='seconds')} at commit {commit or '?'}"
            f" on {os.cpu_count()} CPUs, {memory:.1f} GB, {platform.platform()}, Python"
            f" {platform.python_version()}; {versions}. Load average at the start:"
            f" {', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        ],
    )


def main(argv: list[str]) -> int:
    from bench import cycle, dag, endpoint

    benches = {
        "load": lambda: load(),
        "endpoint": endpoint.main,
        "dag": dag.main,
        "cycle": cycle.main,
    }
    chosen = argv or list(benches)
    unknown = [name for name in chosen if name not in benches]
    if unknown:
        print(f"unknown bench {unknown}; choose from {list(benches)}", file=sys.stderr)
        return 2
    environment()
    return max(benches[name]() for name in chosen)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
