"""Records what each reliability test broke, what the system did and what was checked after.

Tests call :func:`record` once they have asserted everything; ``tests/conftest.py`` writes the
rows to ``WINE_RELIABILITY_OUT`` at the end of the session, and ``scripts/reliability_report.py``
turns them into ``docs/reliability.md``. A row exists only for a case whose assertions passed.
"""

from __future__ import annotations

from typing import Any

ROWS: list[dict[str, Any]] = []


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
