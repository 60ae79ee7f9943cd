"""bench/results.md: one file, one section per bench, each replaced in place by its own run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

RESULTS_MD = Path(__file__).parent / "results.md"


def put_section(path: Path, name: str, lines: Sequence[str]) -> None:
    """Write ``lines`` as section ``name`` of ``path`` (between its markers), keeping the rest."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = "\n".join([start, *lines, end])
    text = path.read_text() if path.is_file() else "# Bench results\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    path.write_text(text.rstrip() + "\n")
