"""``make bench``: load the running model server (make up / make run first) and record figures.

``python -m bench [load] [endpoint] [dag] [cycle]`` (default: all four, in that order):

- ``load`` writes bench/results/load.json: throughput and latency percentiles at each
  concurrency. Settings: WINE_MODEL_SERVER_URL (default http://127.0.0.1:1234),
  WINE_BENCH_SECONDS (default 20 per step).
- ``endpoint`` writes bench/results/endpoint.json and a section of bench/results.md: the project
  server vs stock ``mlflow models serve`` of the same version and vs a plain ``mlflow.sklearn``
  model of its pipeline, with ``hey`` (see :mod:`bench.endpoint`).
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
from wine_quality.config import RUNBOOK_PAYLOAD


def load() -> int:
    url = os.environ.get("WINE_MODEL_SERVER_URL", "http://127.0.0.1:1234").rstrip("/")
    seconds = float(os.environ.get("WINE_BENCH_SECONDS", "20"))
    steps = {}
    for concurrency in (1, 4, 8):
        result = run_load(
            f"{url}/invocations", RUNBOOK_PAYLOAD, seconds=seconds, concurrency=concurrency,
            max_requests=200_000,
        )  # fmt: skip
        steps[f"concurrency_{concurrency}"] = result.summary()
        print(concurrency, json.dumps(steps[f"concurrency_{concurrency}"]))
    out = Path(__file__).parent / "results" / "load.json"
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
    print(f"wrote {out}")
    return 1 if any(step["failed"] for step in steps.values()) else 0


def main(argv: list[str]) -> int:
    from bench import cycle, dag, endpoint

    benches = {"load": load, "endpoint": endpoint.main, "dag": dag.main, "cycle": cycle.main}
    chosen = argv or list(benches)
    unknown = [name for name in chosen if name not in benches]
    if unknown:
        print(f"unknown bench {unknown}; choose from {list(benches)}", file=sys.stderr)
        return 2
    return max(benches[name]() for name in chosen)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
