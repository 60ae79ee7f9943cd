"""``python -m bench cycle``: the pipeline's stages in sequence on growing data.

For each size the bench generates a CSV of that many rows (rows resampled from the real file with
small multiplicative noise, seeded, kept under ``.local/bench/cycle/``, never committed), then
runs ingest, validate, train, evaluate, promote, deploy and canary with the package's own
functions, one after another in one plain process per size (a fresh subprocess, so no size pays
for another's imports or heap). Each stage's wall time and its peak RSS (the process's high-water
mark, reset before the stage) are recorded, and between sizes the growth exponent: the slope of
log(time) over log(rows). A stage with an exponent near 1 grows linearly with the data.

It needs the local stack (``make up``, or ``scripts/stack.sh up`` with its own
``WINE_STATE_DIR`` and ports): ``MLFLOW_TRACKING_URI``, ``WINE_MODEL_SERVER_URL`` and the reload
token (``WINE_MODEL_SERVER_TOKEN``, else the one ``stack.sh`` keeps in ``WINE_STATE_DIR``). The
evaluation policy forces promotion, so every size runs the same stages down to the canary; if no
version is in production yet, one unmeasured cycle on the real file makes one, so every measured
evaluation scores two models.

Settings: ``WINE_BENCH_ROWS`` (comma-separated sizes), else the default sizes up to
``WINE_BENCH_MAX_ROWS`` (default 1.6 M; 16000000 adds the 16 M size, about 1.3 GB of CSV). Writes
bench/results/cycle.json and the cycle section of bench/results.md.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.report import put_section

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
DATA_DIR = REPO / ".local" / "bench" / "cycle"
SHARED_DATA = REPO.parent / "shared" / "data" / "winequality-red.csv"

DEFAULT_SIZES: tuple[int, ...] = (1_600, 16_000, 160_000, 1_600_000)
LARGE_SIZE = 16_000_000
STAGES: tuple[str, ...] = (
    "ingest", "validate", "train", "evaluate", "promote", "deploy", "canary",
)  # fmt: skip
# The budgets for the whole cycle: rows -> (seconds, peak RSS in MB).
BUDGETS: dict[int, tuple[float, float]] = {
    1_600_000: (120.0, 2_500.0),
    16_000_000: (900.0, 12_000.0),
}
SEED = 7
# The markers of the cycle's section in bench/results.md (bench.report.put_section).
MD_START, MD_END = "<!-- cycle:start -->", "<!-- cycle:end -->"
# Each feature moves by a normal multiplicative factor whose spread is this share of the
# feature's own coefficient of variation: new rows, but the same population (density, whose
# spread is 0.2 %, moves by 0.01 %; a flat 1 % would drown its signal).
NOISE_SHARE = 0.05
# Digits kept beyond the file's own, so that most noisy rows differ from every other row.
EXTRA_DECIMALS = 2
CHUNK_ROWS = 500_000


# --- data --------------------------------------------------------------------------------------


def generate(rows: int, source: Path, out_dir: Path = DATA_DIR, *, seed: int = SEED) -> Path:
    """A CSV of ``rows`` rows resampled from ``source`` with small noise; reused if present.

    Quality scores are kept as they are (integers); free SO2 is capped at total SO2 so that the
    noise never breaks the suite's pair check. Written to a partial file and renamed, so an
    interrupted run never leaves a short file behind under the final name.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from wine_quality.core.config import CSV_SEPARATOR, FEATURES, TARGET

    out = out_dir / f"wine-{rows}-seed{seed}.csv"
    if out.is_file():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    text = pd.read_csv(source, sep=CSV_SEPARATOR, dtype=str)
    base = text.astype("float64")
    features = base.loc[:, list(FEATURES)].to_numpy()
    # The usual number of decimals per column (a few alcohol values carry thirteen).
    decimals = [
        int(text[c].str.partition(".")[2].str.len().mode().max()) + EXTRA_DECIMALS for c in FEATURES
    ]
    spread = NOISE_SHARE * features.std(axis=0) / features.mean(axis=0)
    quality = base[TARGET].to_numpy().astype("int64")
    free, total = FEATURES.index("free sulfur dioxide"), FEATURES.index("total sulfur dioxide")
    rng = np.random.default_rng(seed)
    partial = out.with_name(out.name + ".partial")
    options = pacsv.WriteOptions(delimiter=CSV_SEPARATOR)
    schema = pa.schema([(c, pa.float64()) for c in FEATURES] + [(TARGET, pa.int64())])
    with pacsv.CSVWriter(str(partial), schema, write_options=options) as writer:
        for start in range(0, rows, CHUNK_ROWS):
            size = min(CHUNK_ROWS, rows - start)
            pick = rng.integers(0, len(features), size)
            noisy = features[pick] * (1 + rng.normal(0.0, spread, (size, len(FEATURES))))
            columns = [np.round(noisy[:, i], d) for i, d in enumerate(decimals)]
            columns[free] = np.minimum(columns[free], columns[total])
            writer.write_table(
                pa.Table.from_arrays(
                    [*map(pa.array, columns), pa.array(quality[pick])], schema=schema
                )
            )
    partial.replace(out)
    return out


# --- measuring ---------------------------------------------------------------------------------


def _rss_mb(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux 4.0+); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


@dataclass
class StageResult:
    """One stage of one size: its outcome, wall time and peak RSS."""

    status: str = "not run"  # passed, failed, not run
    seconds: float | None = None
    peak_rss_mb: float | None = None
    # What the process already held when the stage began (imports, memory earlier stages kept):
    # in the DAG each task is a fresh process, so peak minus this is the stage's own growth.
    start_rss_mb: float | None = None
    detail: str = ""


@contextmanager
def measured(result: StageResult) -> Iterator[None]:
    """Time the block and record the peak RSS the process reached inside it.

    The kernel's high-water mark is reset at the start, so it holds this block's peak exactly;
    where that is not allowed, a thread samples the RSS every 10 ms instead.
    """
    gc.collect()
    exact = _reset_peak()
    result.start_rss_mb = round(_rss_mb("VmRSS"), 1)
    peak = [result.start_rss_mb]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], _rss_mb("VmRSS"))

    sampler = None if exact else threading.Thread(target=sample, daemon=True)
    if sampler:
        sampler.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        result.seconds = round(time.perf_counter() - started, 3)
        stop.set()
        if sampler:
            sampler.join()
        result.peak_rss_mb = round(_rss_mb("VmHWM") if exact else peak[0], 1)


# --- one cycle (runs in the child process) -----------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """Where the cycle's services are."""

    tracking_uri: str
    server_url: str
    token: str
    staging_uri: str


def stack_from_env(env: Mapping[str, str], staging_uri: str) -> Stack:
    """The stack the scripts started: URIs and reload token as ``scripts/airflow-env.sh`` finds
    them (the token from the environment, else the file ``stack.sh`` generated it into)."""
    from wine_quality.core.config import Settings

    settings = Settings.from_env(dict(env))
    token = settings.model_server_token
    token_file = Path(env.get("WINE_STATE_DIR") or REPO / ".local") / "model-server.token"
    if not token and token_file.is_file():
        token = token_file.read_text().strip()
    return Stack(settings.tracking_uri, settings.model_server_url, token, staging_uri)


def run_cycle(csv: Path, stack: Stack, run_id: str) -> dict[str, StageResult]:
    """Every stage of the DAG on ``csv``, in order, as its task calls it; stop at a failure.

    Args:
        csv: The source file.
        stack: The services to use.
        run_id: Stands for the Airflow run id (and the snapshot key): unique per cycle.
    """
    from wine_quality.core import config
    from wine_quality.data.ingest import ingest
    from wine_quality.gate.evaluate import PromotionPolicy, compare_with_production
    from wine_quality.model.train import train_from_snapshot
    from wine_quality.release.canary import run_canary
    from wine_quality.release.deploy import deploy
    from wine_quality.release.registry import promote
    from wine_quality.validation.run import validate_snapshot

    mlflow_run = {
        "tracking_uri": stack.tracking_uri,
        "experiment_name": config.EXPERIMENT_NAME,
        "airflow_run_id": run_id,
    }
    policy = PromotionPolicy(
        max_rmse=config.DEFAULT_MAX_RMSE,
        min_r2=config.DEFAULT_MIN_R2,
        min_improvement=config.DEFAULT_MIN_IMPROVEMENT,
        force=True,
    )
    state: dict[str, Any] = {}
    steps: dict[str, Callable[[], Any]] = {
        "ingest": lambda: ingest(str(csv), stack.staging_uri, run_id),
        "validate": lambda: validate_snapshot(
            state["ingest"], min_rows=config.MIN_ROWS, **mlflow_run
        ),
        "train": lambda: train_from_snapshot(
            state["ingest"],
            tracking_uri=stack.tracking_uri,
            experiment_name=config.EXPERIMENT_NAME,
            alphas=config.DEFAULT_ALPHAS,
            l1_ratios=config.DEFAULT_L1_RATIOS,
            dag_id=config.DAG_ID,
            airflow_run_id=run_id,
        ),
        "evaluate": lambda: compare_with_production(
            candidate=state["train"], policy=policy, **mlflow_run
        ),
        "promote": lambda: promote(
            tracking_uri=stack.tracking_uri,
            version=state["evaluate"].candidate_version,
            expected_production=state["evaluate"].production_version,
            airflow_run_id=run_id,
            forced=state["evaluate"].forced,
        ),
        "deploy": lambda: deploy(
            server_url=stack.server_url,
            token=stack.token,
            expected_version=state["promote"].version,
        ),
        "canary": lambda: run_canary(
            tracking_uri=stack.tracking_uri,
            server_url=stack.server_url,
            version=state["promote"].version,
            holdout_uri=state["train"].holdout_uri,
            sample_rows=config.DEFAULT_CANARY_ROWS,
            p95_budget_ms=config.DEFAULT_CANARY_P95_MS,
        ),
    }
    results = {name: StageResult() for name in STAGES}
    for name in STAGES:
        result = results[name]
        try:
            with measured(result):
                state[name] = steps[name]()
        except Exception as exc:  # noqa: BLE001 - recorded, and the cycle stops here
            result.status, result.detail = "failed", f"{type(exc).__name__}: {exc}"[:500]
            traceback.print_exc()
            break
        result.status = "passed"
        print(f"  {name}: {result.seconds:.2f} s, peak {result.peak_rss_mb:.0f} MB", flush=True)
    if "ingest" in state:
        # The snapshot is a copy of the generated file: do not keep gigabytes per size.
        Path(state["ingest"].snapshot_uri).unlink(missing_ok=True)
    return results


def _child(argv: Sequence[str]) -> int:
    """``python -m bench.cycle --child CSV RUN_ID OUT``: one cycle, its results to OUT."""
    import logging

    csv, run_id, out = Path(argv[0]), argv[1], Path(argv[2])
    logging.basicConfig(level=logging.WARNING)
    stack = stack_from_env(os.environ, str(out.parent / "staging"))
    results = run_cycle(csv, stack, run_id)
    out.write_text(json.dumps({name: asdict(r) for name, r in results.items()}, indent=2))
    return 0 if all(r.status == "passed" for r in results.values()) else 1


# --- the bench (parent process) ----------------------------------------------------------------


def sizes_from_env(env: Mapping[str, str]) -> list[int]:
    """``WINE_BENCH_ROWS`` if set, else the default sizes up to ``WINE_BENCH_MAX_ROWS``."""
    explicit = env.get("WINE_BENCH_ROWS", "").strip()
    if explicit:
        return sorted({int(float(part)) for part in explicit.split(",") if part.strip()})
    limit = int(float(env.get("WINE_BENCH_MAX_ROWS") or DEFAULT_SIZES[-1]))
    return [n for n in (*DEFAULT_SIZES, LARGE_SIZE) if n <= limit]


def growth(points: Sequence[tuple[int, float | None]]) -> dict[str, float | None]:
    """The log-log slope between consecutive sizes: 1 is linear, 2 quadratic, 0 flat."""
    slopes: dict[str, float | None] = {}
    for (n1, y1), (n2, y2) in itertools.pairwise(points):
        ok = y1 is not None and y2 is not None and y1 > 0 and y2 > 0
        slopes[f"{n1}->{n2}"] = round(math.log(y2 / y1) / math.log(n2 / n1), 2) if ok else None
    return slopes


def _child_env(env: Mapping[str, str]) -> dict[str, str]:
    paths = [str(REPO / "include"), str(REPO), env.get("PYTHONPATH", "")]
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def _cycle_in_child(
    csv: Path, run_id: str, workdir: Path, env: Mapping[str, str], log: Path
) -> dict[str, Any]:
    """One cycle in a fresh interpreter; its stage results as it wrote them."""
    out = workdir / f"{run_id}.json"
    with log.open("a") as handle:
        handle.write(f"\n=== {run_id} ({csv.name})\n")
        handle.flush()
        subprocess.run(
            [sys.executable, "-m", "bench.cycle", "--child", str(csv), run_id, str(out)],
            cwd=REPO, env=_child_env(env), stdout=handle, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    return json.loads(out.read_text()) if out.is_file() else {}


def _needs_production(tracking_uri: str) -> bool:
    from wine_quality.core.config import PRODUCTION_ALIAS
    from wine_quality.core.tracking import client
    from wine_quality.release.registry import alias_version

    return alias_version(client(tracking_uri), PRODUCTION_ALIAS) is None


def run(
    sizes: Sequence[int],
    *,
    source: Path,
    env: Mapping[str, str],
    data_dir: Path = DATA_DIR,
    out_json: Path = RESULTS / "cycle.json",
    out_md: Path = RESULTS.parent / "results.md",
) -> dict[str, Any]:
    """Generate the data, run one cycle per size in a fresh process, and write the results.

    Returns:
        The document written to ``out_json``.

    Raises:
        RuntimeError: The tracking server does not answer (start the stack first).
    """
    import requests

    stack = stack_from_env(env, "")
    try:
        requests.get(f"{stack.tracking_uri}/health", timeout=10).raise_for_status()
    except requests.RequestException as exc:
        raise RuntimeError(f"no MLflow at {stack.tracking_uri} ({exc}): `make up` first") from exc
    stamp = time.strftime("%Y%m%dT%H%M%S")
    workdir = data_dir / f"run-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "cycle.log"
    if _needs_production(stack.tracking_uri):
        # Unmeasured: a first production, so every measured evaluation scores two models.
        print("no production version yet: one unmeasured cycle on the real file", flush=True)
        _cycle_in_child(source, f"bench_cycle__warmup__{stamp}", workdir, env, log)
    load_before = os.getloadavg()
    sizes_out = []
    for rows in sorted(sizes):
        csv = generate(rows, source, data_dir)
        print(f"{rows} rows ({csv.stat().st_size / 1e6:.1f} MB of CSV):", flush=True)
        # The machine may be shared: the load around each size says how far to trust it.
        load = os.getloadavg()[0]
        found = _cycle_in_child(csv, f"bench_cycle__{rows}__{stamp}", workdir, env, log)
        stages = {name: found.get(name, asdict(StageResult())) for name in STAGES}
        for name, stage in stages.items():
            shown = f"{stage['seconds']:.2f} s" if stage["seconds"] is not None else "-"
            print(f"  {name:9} {stage['status']:8} {shown:>10}  {stage['peak_rss_mb'] or '-'} MB")
        passed = all(stage["status"] == "passed" for stage in stages.values())
        total = sum(stage["seconds"] or 0.0 for stage in stages.values())
        # The high-water mark is reset before each stage: the process's peak is the largest.
        peak = max((stage["peak_rss_mb"] or 0.0 for stage in stages.values()), default=0.0)
        sizes_out.append(
            {
                "rows": rows,
                "csv_bytes": csv.stat().st_size,
                "passed": passed,
                "total_seconds": round(total, 2),
                "peak_rss_mb": peak,
                "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
                "stages": stages,
            }
        )
    document = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
            "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        "data": {"seed": SEED, "noise_share": NOISE_SHARE, "source": source.name},
        "sizes": sizes_out,
        "growth_exponent": _exponents(sizes_out),
        "budgets": _budgets(sizes_out),
        "log": str(log.relative_to(REPO)) if log.is_relative_to(REPO) else str(log),
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(document, indent=2) + "\n")
    write_markdown(document, out_md)
    shutil.rmtree(workdir / "staging", ignore_errors=True)
    return document


def _exponents(sizes: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    exponents = {
        name: growth([(s["rows"], s["stages"][name]["seconds"]) for s in sizes]) for name in STAGES
    }
    exponents["total"] = growth([(s["rows"], s["total_seconds"]) for s in sizes])
    return exponents


def _budgets(sizes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for size in sizes:
        if size["rows"] in BUDGETS:
            seconds, mb = BUDGETS[size["rows"]]
            out[str(size["rows"])] = {
                "seconds": seconds,
                "peak_rss_mb": mb,
                "met": size["passed"]
                and size["total_seconds"] <= seconds
                and size["peak_rss_mb"] <= mb,
            }
    return out


def write_markdown(document: dict[str, Any], path: Path) -> None:
    """Put the cycle's tables into ``path`` between its markers, leaving the rest as it is."""
    sizes = document["sizes"]
    head = "| stage | " + " | ".join(f"{s['rows']:,} rows" for s in sizes) + " |"
    rule = "| --- |" + " ---: |" * len(sizes)
    lines = [
        "## Cycle: the DAG's stages on growing data (`python -m bench cycle`)",
        "",
        f"Measured {document['measured_at']} on {document['machine']['cpus']} CPUs,"
        f" {document['machine']['memory_gb']} GB, load average"
        f" {document['machine']['load_average'][0]}-{document['machine']['load_average'][1]}."
        " Seconds and peak RSS (MB) per stage, the stages in one fresh process per size (a"
        " stage's peak includes what the process still held from the stages before it:"
        " `start_rss_mb` in cycle.json); the growth exponent is the log-log slope of time"
        " between sizes (1 = linear).",
        "",
        head,
        rule,
    ]
    for name in STAGES:
        cells = []
        for s in sizes:
            stage = s["stages"][name]
            cells.append(
                f"{stage['seconds']:.2f} s / {stage['peak_rss_mb']:.0f} MB"
                if stage["seconds"] is not None
                else stage["status"]
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = [f"**{s['total_seconds']:.2f} s / {s['peak_rss_mb']:.0f} MB**" for s in sizes]
    loads = [f"{s['load_average'][0]:.1f}-{s['load_average'][1]:.1f}" for s in sizes]
    lines += [
        "| **total** | " + " | ".join(totals) + " |",
        "| load average | " + " | ".join(loads) + " |",
        "",
    ]
    pairs = list(document["growth_exponent"]["total"])
    if pairs:
        lines += [
            "| growth exponent | " + " | ".join(pairs) + " |",
            "| --- |" + " ---: |" * len(pairs),
        ]
        for name, slopes in document["growth_exponent"].items():
            shown = ["-" if slopes[p] is None else f"{slopes[p]:.2f}" for p in pairs]
            lines.append(f"| {name} | " + " | ".join(shown) + " |")
        lines.append("")
    for rows, budget in document["budgets"].items():
        lines.append(
            f"Budget at {int(rows):,} rows: {budget['seconds']:g} s and"
            f" {budget['peak_rss_mb']:g} MB peak: {'met' if budget['met'] else '**missed**'}."
        )
    put_section(path, "cycle", lines)


def main() -> int:
    """``python -m bench cycle``: the sizes from the environment, the stack from the environment."""
    configured = os.environ.get("WINE_DATA_URI", "")
    source = Path(configured) if configured and "://" not in configured else SHARED_DATA
    document = run(sizes_from_env(os.environ), source=source, env=dict(os.environ))
    print(json.dumps(document["growth_exponent"], indent=2))
    print(f"wrote {RESULTS / 'cycle.json'} and {RESULTS.parent / 'results.md'}")
    return 0 if all(size["passed"] for size in document["sizes"]) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("CSV", "RUN_ID", "OUT"))
    args = parser.parse_args()
    sys.exit(_child(args.child) if args.child else main())
