"""The cycle bench's own logic: the data it generates, the sizes it picks, the figures it writes."""

from __future__ import annotations

import pytest

from bench.cycle import (
    DEFAULT_SIZES,
    LARGE_SIZE,
    MD_END,
    MD_START,
    STAGES,
    generate,
    growth,
    sizes_from_env,
    write_markdown,
)
from wine_quality.core.config import COLUMNS, FEATURES, TARGET
from wine_quality.data.parse import parse_csv
from wine_quality.validation import validate_frame


def test_generated_rows_are_new_valid_wine_of_the_same_population(wine_csv, wine_frame, tmp_path):
    path = generate(3000, wine_csv, tmp_path, seed=1)
    frame = parse_csv(path.read_bytes())
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 3000
    # The suite the pipeline runs must pass, or the bench would stop at validate.
    assert validate_frame(frame).success
    assert set(frame[TARGET]) <= set(wine_frame[TARGET])
    # New rows (noise), yet each feature keeps the real file's centre within a few percent.
    assert not frame.merge(wine_frame, how="inner").shape[0]
    for column in FEATURES:
        assert frame[column].mean() == pytest.approx(wine_frame[column].mean(), rel=0.05)


def test_generation_is_seeded_and_reused(wine_csv, tmp_path):
    first = generate(2000, wine_csv, tmp_path / "a", seed=1)
    again = generate(2000, wine_csv, tmp_path / "b", seed=1)
    other = generate(2000, wine_csv, tmp_path / "c", seed=2)
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    stamp = first.stat().st_mtime_ns
    assert generate(2000, wine_csv, tmp_path / "a", seed=1) == first
    assert first.stat().st_mtime_ns == stamp  # found, not written again
    assert not list((tmp_path / "a").glob("*.partial"))


def test_growth_exponent_is_the_log_log_slope():
    linear = growth([(1_000, 2.0), (10_000, 20.0), (100_000, 200.0)])
    assert linear == {"1000->10000": 1.0, "10000->100000": 1.0}
    assert growth([(100, 1.0), (1_000, 100.0)]) == {"100->1000": 2.0}
    assert growth([(100, 3.0), (1_000, 3.0)]) == {"100->1000": 0.0}
    assert growth([(100, None), (1_000, 3.0)]) == {"100->1000": None}


@pytest.mark.parametrize(
    ("env", "sizes"),
    [
        ({}, list(DEFAULT_SIZES)),
        ({"WINE_BENCH_MAX_ROWS": "16000000"}, [*DEFAULT_SIZES, LARGE_SIZE]),
        ({"WINE_BENCH_MAX_ROWS": "160000"}, [1_600, 16_000, 160_000]),
        ({"WINE_BENCH_ROWS": "3200, 800"}, [800, 3_200]),
    ],
)
def test_sizes_come_from_the_environment(env, sizes):
    assert sizes_from_env(env) == sizes


def _document(seconds: float) -> dict:
    stage = {"status": "passed", "seconds": seconds, "peak_rss_mb": 400.0, "detail": ""}
    sizes = [
        {"rows": n, "total_seconds": seconds * len(STAGES), "peak_rss_mb": 400.0,
         "load_average": [0.5, 0.7], "stages": dict.fromkeys(STAGES, stage)}
        for n in (1_600, 16_000)
    ]  # fmt: skip
    return {
        "measured_at": "2026-11-29T12:00:00+0000",
        "machine": {"cpus": 2, "memory_gb": 23.5, "load_average": [1.0, 1.5]},
        "sizes": sizes,
        "growth_exponent": {name: {"1600->16000": 0.0} for name in (*STAGES, "total")},
        "budgets": {},
    }


def test_markdown_section_is_replaced_in_place_not_appended(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("# Bench results\n\nText before.\n")
    write_markdown(_document(1.0), path)
    write_markdown(_document(2.0), path)
    text = path.read_text()
    assert text.startswith("# Bench results\n\nText before.\n")
    assert text.count(MD_START) == text.count(MD_END) == 1
    assert "| train | 2.00 s / 400 MB | 2.00 s / 400 MB |" in text
    assert "1.00 s" not in text
    assert "| load average | 0.5-0.7 | 0.5-0.7 |" in text
