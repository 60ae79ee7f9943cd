"""A loopback load generator for the model server, bounded in time and in request count.

Used by the load-across-promotion test and by ``make bench``. It only ever targets the URL it
is given, which must be on this machine (loopback), and it stops by itself.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import requests

from wine_quality.gate.stats import percentile

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Sample:
    """One request's outcome."""

    started: float
    seconds: float
    status: int | None
    version: str | None
    prediction: float | None
    error: str | None = None


@dataclass
class LoadResult:
    """All samples of a run and the figures people quote."""

    samples: list[Sample] = field(default_factory=list)
    duration: float = 0.0

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200 or s.error]

    def summary(self) -> dict[str, Any]:
        latencies = sorted(s.seconds * 1000 for s in self.samples if s.status == 200)

        def at(q: float) -> float:
            # The canary's nearest-rank percentile, so bench and canary quote the same figure.
            return round(percentile(latencies, q), 2) if latencies else 0.0

        return {
            "requests": len(self.samples),
            "failed": len(self.failed),
            "duration_s": round(self.duration, 2),
            "throughput_rps": round(len(self.samples) / self.duration, 1) if self.duration else 0,
            "latency_ms": {
                "p50": at(50),
                "p95": at(95),
                "p99": at(99),
                "max": round(latencies[-1], 2) if latencies else 0.0,
            },
            "versions": dict(Counter(s.version for s in self.samples)),
        }


def run_load(
    url: str,
    payload: dict[str, Any],
    *,
    seconds: float,
    concurrency: int,
    max_requests: int,
    timeout: float = 10.0,
) -> LoadResult:
    """POST ``payload`` to ``url`` from ``concurrency`` threads until time or count runs out.

    Raises:
        ValueError: ``url`` is not on the loopback interface.
    """
    if urlparse(url).hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"load is only ever sent to loopback, not to {url}")
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    budget = [max_requests]

    def worker() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                started = time.monotonic()
                try:
                    response = session.post(url, json=payload, timeout=timeout)
                    body = response.json() if response.status_code == 200 else {}
                    predictions = body.get("predictions") or [None]
                    sample = Sample(
                        started, time.monotonic() - started, response.status_code,
                        response.headers.get("X-Model-Version"), predictions[0],
                    )  # fmt: skip
                except requests.RequestException as exc:
                    sample = Sample(started, time.monotonic() - started, None, None, None, str(exc))
                with lock:
                    result.samples.append(sample)

    began = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + timeout + 5)
    result.duration = time.monotonic() - began
    return result
