"""Importing a package module loads none of the heavy libraries: the DAG file and the plugins
import the package at parse time, and the scheduler parses them every few seconds.

Each case runs in a fresh interpreter, so what another test imported cannot hide a leak.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import wine_quality

HEAVY = ("numpy", "pandas", "scipy", "sklearn", "matplotlib", "mlflow", "great_expectations")
MODULES = tuple(
    f"wine_quality.{name}"
    for name in (
        "core.config",
        "gate.drift",
        "gate.plots",
        "validation",
        "model.lineage",
        "gate.evaluate",
        "gate.card",
        "gate.stats",
        "release.approval",
        "data.source",
        "data.holdout",
        "data.parse",
        "gate.record",
        "model.search",
        "data.storage",
        "model.train",
        "data.ingest",
    )
)


@pytest.mark.parametrize("module", MODULES)
def test_importing_the_module_loads_nothing_heavy(module):
    code = f"import sys, {module}\nprint(sorted(set({HEAVY!r}) & set(sys.modules)))\n"
    include = Path(wine_quality.__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(include)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]", f"{module} imports {done.stdout.strip()}"
