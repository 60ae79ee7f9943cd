"""The scaling measurement's own logic: wrk's script and summary, and the lines it writes.

wrk itself runs in the bench smoke test (tests/integration/test_bench_smoke.py).
"""

from __future__ import annotations

import json

import pytest

from bench import cores
from bench.endpoint import summarise


def test_the_script_posts_the_body_file_and_prints_one_json_line(tmp_path):
    body = tmp_path / 'rows "1".json'  # A quote in the path must not break the Lua string.
    body.write_text("{}")
    script = cores.script_for(body, tmp_path).read_text()
    assert f"io.open({json.dumps(str(body))}, " in script
    assert 'wrk.method = "POST"' in script
    assert 'wrk.headers["Content-Type"] = "application/json"' in script
    assert "latency:percentile(99)" in script
    assert cores.MARK in script


def test_the_summary_is_the_marked_line_of_wrks_output():
    stdout = (
        "Running 5s test @ http://127.0.0.1:1234/invocations\n"
        "  1 threads and 8 connections\n"
        'WRKJSON {"requests": 20000, "duration_us": 5000000, "status_errors": 2,'
        ' "socket_errors": 1, "p50_us": 1800, "p99_us": 4200}\n'
        "Requests/sec:   4000.00\n"
    )
    assert cores.parse(stdout) == {
        "requests": 20000,
        "duration_us": 5000000,
        "status_errors": 2,
        "socket_errors": 1,
        "p50_us": 1800,
        "p99_us": 4200,
    }
    with pytest.raises(ValueError, match="no summary"):
        cores.parse("unable to connect to 127.0.0.1:1234 Connection refused\n")


def test_load_is_never_sent_off_loopback(tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        cores.wrk("http://example.com/invocations", tmp_path / "x.lua", connections=1, seconds=1)


def _runs(rps: float, cpu: float) -> list[dict]:
    run = {"requests": 1000, "failed": 0, "rps": rps, "p50_ms": 1.0, "p99_ms": 2.0}
    return [{**run, "client_cpu_ms_per_request": cpu, "load_average": 1.0}]


def _document() -> dict:
    def cell(rps: float, cpu: float) -> dict:
        return summarise(_runs(rps, cpu))

    steps = {
        "c1": {"project": cell(2000.0, 0.03), "project-1w": cell(2200.0, 0.03)},
        "c8": {"project": cell(4000.0, 0.04), "project-1w": cell(2500.0, 0.02)},
    }
    return {
        "machine": {"cpus": 2},
        "steps": {"rows_1_c8": {"project": cell(2400.0, 0.09), "ratio_x": 1.0}},
        "scaling": {
            "seconds": 5.0,
            "repetitions": 1,
            "workers": {"project": 2, "project-1w": 1},
            "steps": steps,
        },
    }


def test_the_verdict_says_what_the_workers_add_and_what_each_load_generator_costs():
    assert cores.verdict(_document()) == [
        "- project (2 worker(s)), wrk: concurrency 8 / 1: 2.00x requests/s.",
        "- project-1w (1 worker(s)), wrk: concurrency 8 / 1: 1.14x requests/s.",
        "- **project (2 workers) over project-1w (1) at concurrency 8, wrk: 1.60x requests/s**"
        " on 2 CPUs shared with the load generator.",
        "- hey's CPU per request in the table above (one row, concurrency 8): project 0.09 ms.",
    ]


def test_the_table_has_every_server_at_both_concurrencies_with_its_client_cpu():
    text = "\n".join(cores.render(_document()))
    assert "`wrk -t1`, 5 s per run, 1 runs per cell" in text
    assert "| 8 | project | 2 | 4000 (4000-4000) | 1 (1-1) | 2 (2-2) | 0 | 0.04 |" in text
    assert "| 1 | project-1w | 1 | 2200 (2200-2200) |" in text


def test_without_a_scaling_measurement_nothing_is_written():
    document = _document()
    del document["scaling"]
    assert cores.render(document) == []
    assert cores.verdict(document) == []
