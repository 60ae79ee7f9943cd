"""The broken-input corpus: every kind of bad source the pipeline must refuse, built from the real
file at test time (never committed), with the words its error must contain.

Shared by the validation-level tests (all kinds) and the DAG-level tests (a representative set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Mutation = Callable[[bytes], bytes]


def _lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\n")


def _set_cell(raw: bytes, row: int, column: int, value: bytes) -> bytes:
    lines = _lines(raw)
    cells = lines[row].split(b";")
    cells[column] = value
    lines[row] = b";".join(cells)
    return b"\n".join(lines)


def _drop_column(raw: bytes, column: int) -> bytes:
    out = []
    for line in _lines(raw):
        cells = line.split(b";")
        out.append(b";".join(cells[:column] + cells[column + 1 :]) if line else line)
    return b"\n".join(out)


def _add_column(raw: bytes) -> bytes:
    lines = _lines(raw)
    return b"\n".join(
        [lines[0] + b';"colour"'] + [line + b";1" if line else line for line in lines[1:]]
    )


def _swap_columns(raw: bytes, a: int, b: int) -> bytes:
    out = []
    for line in _lines(raw):
        cells = line.split(b";")
        if line:
            cells[a], cells[b] = cells[b], cells[a]
        out.append(b";".join(cells))
    return b"\n".join(out)


@dataclass(frozen=True)
class BrokenInput:
    """One kind of broken input and what its error must say."""

    kind: str
    mutate: Mutation
    expect: tuple[str, ...]  # every one of these must appear in the error message


# Column indexes in the file: 0 fixed acidity ... 8 pH, 10 alcohol, 11 quality.
CORPUS: tuple[BrokenInput, ...] = (
    BrokenInput("empty-file", lambda raw: b"", ("empty",)),
    BrokenInput("header-only", lambda raw: _lines(raw)[0] + b"\n", ("no data rows",)),
    BrokenInput("missing-column", lambda raw: _drop_column(raw, 10), ("missing", "alcohol")),
    BrokenInput("extra-column", _add_column, ("unexpected", "colour")),
    BrokenInput(
        "renamed-column",
        lambda raw: raw.replace(b'"alcohol"', b'"alcohol_pct"', 1),
        ("alcohol_pct",),
    ),
    BrokenInput(
        "reordered-columns",
        lambda raw: _swap_columns(raw, 0, 1),
        ("expect_table_columns_to_match_ordered_list",),
    ),
    BrokenInput("comma-separated", lambda raw: raw.replace(b";", b","), ("comma-separated",)),
    BrokenInput("text-in-numeric", lambda raw: _set_cell(raw, 3, 10, b"strong"), ("alcohol",)),
    BrokenInput("blank-cell", lambda raw: _set_cell(raw, 3, 8, b""), ("pH", "null")),
    BrokenInput("nan-cell", lambda raw: _set_cell(raw, 7, 2, b"NaN"), ("citric acid", "null")),
    BrokenInput(
        "negative-concentration",
        lambda raw: _set_cell(raw, 5, 4, b"-0.076"),
        ("chlorides", "-0.076"),
    ),
    BrokenInput("ph-above-14", lambda raw: _set_cell(raw, 5, 8, b"15.5"), ("pH", "15.5")),
    BrokenInput("ph-negative", lambda raw: _set_cell(raw, 6, 8, b"-1"), ("pH",)),
    BrokenInput("quality-11", lambda raw: _set_cell(raw, 9, 11, b"11"), ("quality", "11")),
    BrokenInput("quality-fractional", lambda raw: _set_cell(raw, 9, 11, b"5.5"), ("quality",)),
    BrokenInput("infinity", lambda raw: _set_cell(raw, 4, 3, b"inf"), ("residual sugar",)),
    BrokenInput("huge-1e308", lambda raw: _set_cell(raw, 4, 6, b"1e308"), ("total sulfur",)),
    BrokenInput("too-few-rows", lambda raw: b"\n".join(_lines(raw)[:101]) + b"\n", ("100", "row")),
    BrokenInput(
        "truncated-last-line",
        lambda raw: raw.rstrip(b"\n").rsplit(b";", 4)[0],
        ("truncated",),
    ),
    BrokenInput(
        "latin1-encoded",
        lambda raw: raw.replace(b'"alcohol"', '"alcool é"'.encode("latin-1"), 1),
        ("not UTF-8",),
    ),
)

# Merely differently encoded: must be read exactly like the original.
EQUIVALENT: dict[str, Mutation] = {
    "utf8-bom": lambda raw: b"\xef\xbb\xbf" + raw,
    "crlf": lambda raw: raw.replace(b"\n", b"\r\n"),
    "bom-and-crlf": lambda raw: b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n"),
    "no-final-newline": lambda raw: raw.rstrip(b"\n"),
}

# The representative set that also goes through the whole DAG (`airflow dags test`), with the
# error each must fail with: one refusal at ingest (the separator), and validation failures of
# schema, value range, type and size.
DAG_LEVEL: dict[str, str] = {
    "comma-separated": "DataSourceError",
    "missing-column": "DataValidationError",
    "ph-above-14": "DataValidationError",
    "quality-fractional": "DataValidationError",
    "too-few-rows": "DataValidationError",
}
