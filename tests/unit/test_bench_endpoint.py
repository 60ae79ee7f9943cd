"""The endpoint bench's own logic: the payload, the servers it is told about, the figures it
derives (summaries, ratios, targets) and the section it writes."""

from __future__ import annotations

import json

import pytest

from bench.endpoint import (
    TARGETS,
    check_agreement,
    payload,
    project_servers,
    ratios,
    render,
    scaling,
    summarise,
    verdicts,
    write_markdown,
)
from wine_quality.core.config import FEATURES, RUNBOOK_PAYLOAD


def test_the_payload_is_the_runbook_row_with_float_values():
    # The plain sklearn model's schema is double: MLflow refuses the runbook's ints for it.
    document = json.loads(payload(3))
    assert document["dataframe_split"]["columns"] == list(FEATURES)
    rows = document["dataframe_split"]["data"]
    assert rows == [RUNBOOK_PAYLOAD["dataframe_split"]["data"][0]] * 3  # same values...
    assert all(isinstance(value, float) for row in rows for value in row)  # ...as floats
    assert b"29.0" in payload(1)


@pytest.mark.parametrize(
    ("env", "servers"),
    [
        ({}, {"project": "http://127.0.0.1:1234"}),
        ({"WINE_MODEL_SERVER_URL": "http://127.0.0.1:9/"}, {"project": "http://127.0.0.1:9"}),
        (
            {"WINE_BENCH_PROJECT_URLS": "project-2w=http://127.0.0.1:1235/, project=http://127.0.0.1:1234"},
            {"project": "http://127.0.0.1:1234", "project-2w": "http://127.0.0.1:1235"},
        ),
    ],
)  # fmt: skip
def test_project_servers_come_from_the_environment(env, servers):
    found = project_servers(env)
    assert found == servers
    assert next(iter(found)) == "project"  # the one the ratios are about comes first


@pytest.mark.parametrize(
    "spec",
    [
        "project-2w=http://127.0.0.1:1235",  # no "project"
        "project=http://127.0.0.1:1234,project=http://127.0.0.1:1235",  # repeated
        "project=http://127.0.0.1:1234,stock=http://127.0.0.1:1235",  # a baseline's name
        "project http://127.0.0.1:1234",  # no "="
        "project=127.0.0.1:1234",  # not a URL
    ],
)
def test_a_malformed_list_of_project_servers_is_refused(spec):
    with pytest.raises(ValueError, match="WINE_BENCH_PROJECT_URLS"):
        project_servers({"WINE_BENCH_PROJECT_URLS": spec})


def test_servers_that_predict_differently_are_not_compared():
    check_agreement({"project": 5.4321, "stock": 5.4321, "sklearn": 5.4321 + 1e-12})
    with pytest.raises(RuntimeError, match="do not serve the same model"):
        check_agreement({"project": 5.4321, "stock": 5.4321, "sklearn": 5.4322})


def _run(rps: float, p50: float | None = 1.0, failed: int = 0) -> dict:
    return {"requests": 100, "failed": failed, "rps": rps, "p50_ms": p50, "p99_ms": p50,
            "load_average": 0.5}  # fmt: skip


def test_summary_is_the_median_and_range_of_the_runs():
    summary = summarise([_run(100.0, 2.0), _run(300.0, 1.0, failed=1), _run(200.0, None)])
    assert summary["repetitions"] == 3
    assert summary["failed"] == 1
    assert summary["rps"] == {"median": 200.0, "min": 100.0, "max": 300.0}
    assert summary["p50_ms"] == {"median": 1.5, "min": 1.0, "max": 2.0}  # the None left out
    assert summary["load_average"] == [0.5, 0.5, 0.5]


def _cell(rps: float | None, p50: float | None) -> dict:
    return {"rps": {"median": rps, "min": rps, "max": rps},
            "p50_ms": {"median": p50, "min": p50, "max": p50},
            "p99_ms": {"median": p50, "min": p50, "max": p50}, "failed": 0}  # fmt: skip


def test_ratios_of_each_project_server_over_each_baseline():
    step = {
        "project": _cell(1000.0, 1.0),
        "project-2w": _cell(1500.0, 0.8),
        "stock": _cell(100.0, 10.0),
        "sklearn": _cell(400.0, 2.5),
    }
    assert ratios(step, ["project", "project-2w"], ["stock", "sklearn"]) == {
        "ratio_rps_project_over_stock": 10.0,
        "ratio_p50_stock_over_project": 10.0,
        "ratio_rps_project_over_sklearn": 2.5,
        "ratio_p50_sklearn_over_project": 2.5,
        "ratio_rps_project-2w_over_stock": 15.0,
        "ratio_p50_stock_over_project-2w": 12.5,
        "ratio_rps_project-2w_over_sklearn": 3.75,
        "ratio_p50_sklearn_over_project-2w": 3.12,
    }


def test_a_ratio_without_figures_is_none_not_a_crash():
    step = {"project": _cell(1000.0, None), "stock": _cell(0.0, 10.0)}
    assert ratios(step, ["project"], ["stock"]) == {
        "ratio_rps_project_over_stock": None,
        "ratio_p50_stock_over_project": None,
    }


def _document(sklearn_rps: float) -> dict:
    """Two steps: project 1000 req/s, stock 100, sklearn ``sklearn_rps`` (1 row, c 8 only)."""
    steps = {}
    for name, sklearn in (("rows_1_c1", 300.0), ("rows_1_c8", sklearn_rps)):
        step = {"project": _cell(1000.0, 1.0), "stock": _cell(100.0, 10.0),
                "sklearn": _cell(sklearn, 2.0)}  # fmt: skip
        step.update(ratios(step, ["project"], list(TARGETS)))
        steps[name] = step
    return {
        "measured_at": "2026-11-29T12:00:00+0000",
        "machine": {"cpus": 2, "python": "3.11.7"},
        "model": {"name": "ElasticNetWineModel", "version": "7"},
        "servers": {
            "project": {"role": "project", "url": "http://127.0.0.1:1234"},
            "stock": {"role": "baseline", "serves": "models:/ElasticNetWineModel/7"},
            "sklearn": {"role": "baseline", "serves": "mlflow.sklearn model of v7"},
        },
        "predictions": {"project": 5.25, "stock": 5.25, "sklearn": 5.25},
        "targets": dict(TARGETS),
        "load_generator": "hey (loopback, -cpus 1)",
        "plan": {"requests": 2000, "repetitions": 5, "seconds_limit": 120.0},
        "steps": steps,
    }


def test_targets_met_at_every_step_say_so_with_the_lowest_ratio():
    assert verdicts(_document(sklearn_rps=250.0)) == [
        "- project / stock >= 5x requests/s: **met** at every step (lowest 10x).",
        "- project / sklearn >= 2x requests/s: **met** at every step (lowest 3.33x).",
    ]


def test_a_target_missed_names_the_step_and_its_ratio():
    lines = verdicts(_document(sklearn_rps=800.0))
    assert lines[0].endswith("**met** at every step (lowest 10x).")
    assert lines[1] == (
        "- project / sklearn >= 2x requests/s: **not met** at 1 rows, concurrency 8 (1.25x)."
    )


def test_the_section_has_every_server_every_ratio_and_the_targets():
    text = "\n".join(render(_document(sklearn_rps=800.0)))
    assert "project / stock >= 5x, project / sklearn >= 2x" in text
    assert "as floats" in text  # the payload note: the runbook's ints sent as floats
    for server in ("project", "stock", "sklearn"):
        assert text.count(f"| {server} |") == 2  # one row per step
    assert "| 1, 1 | **project / stock** | **10x** | stock p50 / project p50: 10x |" in text
    assert "| 1, 1 | **project / sklearn** | **3.33x** |" in text
    assert "| 1, 8 | **project / sklearn** | **1.25x** |" in text
    assert text.count("target >= 2x: not met") == 1
    assert text.count("target >= 5x: met") == 2


def test_the_section_is_replaced_in_place_next_to_the_others(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("# Bench results\n\n<!-- cycle:start -->\nkept\n<!-- cycle:end -->\n")
    write_markdown(_document(sklearn_rps=800.0), path)
    write_markdown(_document(sklearn_rps=250.0), path)  # a second run replaces, not appends
    text = path.read_text()
    assert text.count("<!-- endpoint:start -->") == text.count("<!-- endpoint:end -->") == 1
    assert "kept" in text
    assert "not met" not in text


def test_scaling_says_concurrency_8_over_1_and_what_the_workers_add():
    document = _document(500.0)
    document["servers"]["project"]["workers"] = 2
    document["servers"]["project-1w"] = {"role": "project", "url": "http://x", "workers": 1}
    document["steps"]["rows_1_c1"]["project-1w"] = _cell(900.0, 1.0)
    document["steps"]["rows_1_c8"]["project"] = _cell(1800.0, 4.0)
    document["steps"]["rows_1_c8"]["project-1w"] = _cell(1200.0, 6.0)
    assert scaling(document) == [
        "- project (2 worker(s)), hey: one row, concurrency 8 / 1: 1.80x requests/s;"
        " over project-1w at concurrency 8: 1.50x.",
        "- project-1w (1 worker(s)), hey: one row, concurrency 8 / 1: 1.33x requests/s.",
    ]
    assert scaling({**document, "steps": {}}) == []
