"""Records what each reliability test broke, what the system did and what was checked after.

Tests call :func:`record` once they have asserted everything; ``tests/conftest.py`` writes the
rows to ``WINE_RELIABILITY_OUT`` at the end of the session, and ``scripts/reliability_report.py``
turns them into ``docs/reliability.md``. A row exists only for a case whose assertions passed.
"""

from __future__ import annotations

from typing import Any

ROWS: list[dict[str, Any]] = []

# Cases that are one named test each, by report section (the parametrised tables are added by
# :func:`defined_cases`).
NAMED_CASES: dict[str, set[str]] = {
    "bad data": {"missing-source", "url-timeout"},
    "bad data through the DAG": {"missing-source"},
    "faults": {
        "tracking-server-cut-while-training",
        "crash-between-register-and-promote",
        "model-server-down-at-deploy",
        "failed-canary",
        "s3-unreachable-during-upload",
    },
    "hostile requests": {"thousands-of-rows"},
    "load": {"load-across-promotion"},
    "races": {"concurrent-promotions"},
}


def defined_cases() -> dict[str, set[str]]:
    """Every case the reliability suites define, by section: what the report must account for."""
    from tests.data.corpus import CORPUS, DAG_LEVEL, EQUIVALENT
    from tests.integration.test_hostile_requests import HOSTILE

    cases = {area: set(names) for area, names in NAMED_CASES.items()}
    cases["bad data"] |= {c.kind for c in CORPUS} | set(EQUIVALENT)
    cases["bad data through the DAG"] |= set(DAG_LEVEL)
    cases["hostile requests"] |= set(HOSTILE)
    return cases


def record(
    area: str, case: str, broken: str, system_did: str, checked: str, **figures: Any
) -> None:
    """Add one held case (``figures`` such as requests sent/failed go into the report)."""
    ROWS.append(
        {
            "area": area,
            "case": case,
            "broken": broken,
            "system_did": system_did,
            "checked": checked,
            "figures": figures,
        }
    )
