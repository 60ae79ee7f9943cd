"""``preload``: imports with the collector paused, and the collector's state given back."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wine_quality.core.runtime import preload


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_during_the_imports_and_restored(enabled, monkeypatch):
    seen = []
    real = __import__("importlib").import_module

    def spy(name):
        seen.append((name, gc.isenabled()))
        return real(name)

    monkeypatch.setattr("wine_quality.core.runtime.importlib.import_module", spy)
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    (gc.enable if enabled else gc.disable)()
    try:
        preload("colorsys", "json")  # json is imported already: not imported again
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
    assert seen == [("colorsys", False)]
    assert "colorsys" in sys.modules


def test_a_failed_import_still_restores_the_collector():
    gc.enable()
    with pytest.raises(ModuleNotFoundError):
        preload("wine_quality_no_such_module")
    assert gc.isenabled()


def test_it_imports_in_a_fresh_process_what_it_is_asked_to():
    code = (
        "import sys; from wine_quality.core.runtime import preload; "
        "assert 'mlflow' not in sys.modules; preload('mlflow'); assert 'mlflow' in sys.modules"
    )
    include = str(Path(__file__).resolve().parents[2] / "include")
    env = {**os.environ, "PYTHONPATH": include}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
