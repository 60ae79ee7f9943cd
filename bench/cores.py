"""Does the project server scale with cores? Its workers against one worker, loaded by ``wrk``.

In the endpoint table (``hey``, one Go CPU) the two-worker server is no faster than the
one-worker server at concurrency 8: both stay near the same requests/s, which is then hey's own
ceiling, not the server's. ``wrk`` (C, one thread, an event loop) sends more requests a second
for less CPU each, so the scaling question is measured with ``wrk -t1``: each project server at
concurrency 1 and 8, taking turns, several runs each. Every run records the load generator's
own CPU time per request (``getrusage`` of the child), hey's in the endpoint table as well, so
what the load generator costs is a figure next to the result.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

CONCURRENCY = (1, 8)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
MARK = "WRKJSON "
# wrk runs this: the request (POST of the body file) and, at the end, one line of JSON.
SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = io.open(%(body)s, "rb")
wrk.body = file:read("*a")
file:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "status_errors": %%d, "socket_errors": %%d,'
    .. ' "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def children_cpu_seconds() -> float:
    """User + system CPU time of every waited-for child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def script_for(body: Path, directory: Path) -> Path:
    """The Lua script that makes wrk POST ``body`` and print its summary as JSON."""
    script = directory / f"{body.stem}.lua"
    script.write_text(SCRIPT % {"body": json.dumps(str(body)), "mark": MARK})
    return script


def parse(stdout: str) -> dict[str, Any]:
    """The JSON line the script's ``done`` writes.

    Raises:
        ValueError: wrk printed no such line (it failed before the end of the run).
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    raise ValueError(f"wrk printed no summary: {stdout[-500:]!r}")


def wrk(url: str, script: Path, *, connections: int, seconds: float) -> dict[str, Any]:
    """One ``wrk -t1`` run of ``seconds``: requests/s, p50/p99 (ms), failures, client CPU.

    Raises:
        ValueError: ``url`` is not on loopback, or wrk gave no summary.
    """
    if urlparse(url).hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"load is only ever sent to loopback, not to {url}")
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
           "-s", str(script), url]  # fmt: skip
    load_before, cpu_before = os.getloadavg()[0], children_cpu_seconds()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    cpu = children_cpu_seconds() - cpu_before
    found = parse(done.stdout)
    answered = found["requests"]
    return {
        "requests": answered,
        "failed": found["status_errors"] + found["socket_errors"],
        "rps": round(answered / (found["duration_us"] / 1e6), 1) if found["duration_us"] else 0.0,
        "p50_ms": round(found["p50_us"] / 1000, 3) if answered else None,
        "p99_ms": round(found["p99_us"] / 1000, 3) if answered else None,
        "client_cpu_ms_per_request": round(cpu * 1000 / answered, 4) if answered else None,
        "load_average": round((load_before + os.getloadavg()[0]) / 2, 2),
    }


def measure(
    servers: Mapping[str, str],
    body: Path,
    workdir: Path,
    *,
    seconds: float,
    repetitions: int,
    summarise: Any,
) -> dict[str, Any]:
    """Each server at each concurrency, taking turns, ``repetitions`` runs of ``seconds``.

    Args:
        servers: Name -> base URL of the project servers to compare.
        body: The request body (one row).
        workdir: Where wrk's script is written.
        seconds: Length of one run.
        repetitions: Runs per server and concurrency.
        summarise: Turns a list of runs into their medians and min-max (the endpoint bench's,
            client CPU per request included).

    Returns:
        ``c1`` and ``c8``: per server, the summary of its runs (with the runs).
    """
    script = script_for(body, workdir)
    steps: dict[str, Any] = {}
    for connections in CONCURRENCY:
        runs: dict[str, list[dict]] = {name: [] for name in servers}
        for url in servers.values():  # Warm-up: connections, caches.
            wrk(f"{url}/invocations", script, connections=connections, seconds=1)
        for _ in range(repetitions):
            for name, url in servers.items():
                runs[name].append(
                    wrk(f"{url}/invocations", script, connections=connections, seconds=seconds)
                )
        steps[f"c{connections}"] = {name: {**summarise(r), "runs": r} for name, r in runs.items()}
    return steps


def render(document: Mapping[str, Any]) -> list[str]:
    """The scaling part of the endpoint section: a table, and what the workers add."""
    found = document.get("scaling")
    if not found:
        return []
    steps, workers = found["steps"], found["workers"]
    lines = [
        "",
        f"### Scaling with cores (`wrk -t1`, {found['seconds']:g} s per run,"
        f" {found['repetitions']} runs per cell, the project servers taking turns)",
        "",
        "In the table above hey's requests/s at concurrency 8 stay near the same figure whether"
        " the server has one worker or two: that is hey's ceiling on this machine. wrk sends"
        " more for less CPU per request (the last column; hey's in the last line), so its"
        " figures show what the server's workers do with the cores.",
        "",
        "| concurrency | server | workers | req/s | p50 ms | p99 ms | failed"
        " | client CPU ms/request |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for step, cells in steps.items():
        for name, cell in cells.items():
            rps, p50, p99 = (cell[k] for k in ("rps", "p50_ms", "p99_ms"))
            lines.append(
                f"| {step.removeprefix('c')} | {name} | {workers.get(name, 1)} |"
                f" {_spread(rps)} | {_spread(p50)} | {_spread(p99)} | {cell['failed']} |"
                f" {cell['client_cpu_ms_per_request']} |"
            )
    lines += ["", *verdict(document)]
    return lines


def verdict(document: Mapping[str, Any]) -> list[str]:
    """Concurrency 8 over 1 per server, and the most-worker server over the one-worker one."""
    if not document.get("scaling"):
        return []
    steps, workers = document["scaling"]["steps"], document["scaling"]["workers"]
    lines = []
    for name in steps["c8"]:
        c1, c8 = (steps[c][name]["rps"]["median"] for c in ("c1", "c8"))
        if c1 and c8:
            lines.append(
                f"- {name} ({workers.get(name, 1)} worker(s)), wrk: concurrency 8 / 1:"
                f" {c8 / c1:.2f}x requests/s."
            )
    ordered = sorted(steps["c8"], key=lambda n: workers.get(n, 1))
    few, many = ordered[0], ordered[-1]
    low, high = (steps["c8"][n]["rps"]["median"] for n in (few, many))
    if workers.get(many, 1) > workers.get(few, 1) and low and high:
        lines.append(
            f"- **{many} ({workers[many]} workers) over {few} ({workers.get(few, 1)}) at"
            f" concurrency 8, wrk: {high / low:.2f}x requests/s** on {document['machine']['cpus']}"
            " CPUs shared with the load generator."
        )
    hey_cpu = _hey_cpu(document)
    if hey_cpu:
        lines.append(
            f"- hey's CPU per request in the table above (one row, concurrency 8): {hey_cpu}."
        )
    return lines


def _hey_cpu(document: Mapping[str, Any]) -> str:
    step = document.get("steps", {}).get("rows_1_c8", {})
    figures = {
        name: cell.get("client_cpu_ms_per_request")
        for name, cell in step.items()
        if isinstance(cell, dict) and cell.get("client_cpu_ms_per_request") is not None
    }
    return ", ".join(f"{name} {value:g} ms" for name, value in figures.items())


def _spread(figure: Mapping[str, float | None]) -> str:
    if figure["median"] is None:
        return "-"
    return f"{figure['median']:g} ({figure['min']:g}-{figure['max']:g})"
