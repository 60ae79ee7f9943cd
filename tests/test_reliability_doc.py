"""docs/reliability.md must account for every case the reliability suites define, in the right
section, and its figures must agree with its tables."""

from __future__ import annotations

import re
from pathlib import Path

from tests.reliability import defined_cases

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def documented_cases() -> list[tuple[str, str]]:
    """(section, case) for every table row of the record."""
    section, found = "", []
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = re.sub(r" \(\d+ cases?\)$", "", line[3:]).strip()
        elif line.startswith("| ") and not line.startswith(("| case", "| ---")):
            found.append((section, line.split("|")[1].strip()))
    return found


def test_every_defined_case_is_documented_once_in_its_section():
    documented = documented_cases()
    assert len(documented) == len(set(documented)), "a case is listed twice"
    expected = {(area, case) for area, cases in defined_cases().items() for case in cases}
    assert set(documented) == expected


def test_every_case_held_and_the_figures_match_the_tables():
    text = DOC.read_text()
    match = re.search(r"\*\*(\d+) cases tried, (\d+) held\*\*", text)
    assert match, "figures line missing"
    assert int(match.group(1)) == len(documented_cases())
    assert int(match.group(2)) == int(match.group(1)), "a case did not hold"
    assert "| NOT HELD |" not in text
    load = re.search(r"\*\*(\d+) requests sent, (\d+) failed\*\*", text)
    assert load, "load figures missing"
    assert int(load.group(1)) > 0
    assert int(load.group(2)) == 0


def test_the_record_names_no_temporary_path_of_the_machine_that_made_it():
    assert "/tmp/" not in DOC.read_text()
