"""``make bench``: load the running model server (make up / make run first) and record figures.

Writes bench/results/load.json: throughput and latency percentiles at each concurrency, measured
side by side in one run. Settings: WINE_MODEL_SERVER_URL (default http://127.0.0.1:1234),
WINE_BENCH_SECONDS (default 20 per step).
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


def main() -> int:
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


if __name__ == "__main__":
    sys.exit(main())
