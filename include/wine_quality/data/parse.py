"""Parsing the wine CSV strictly into typed columns, with pyarrow, from bytes or a file.

The bytes are checked as they stream (:class:`Scan`: sha256, size, UTF-8); the reader names
what is wrong (an empty file, the wrong separator, a line with the wrong number
of fields, bytes that are not UTF-8) as a :class:`DataSourceError`; a cell that is not a number
is left for the expectation suite to judge and name. Files are read block by block, never whole.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wine_quality.core.config import CSV_SEPARATOR, FEATURES, MB, TARGET
from wine_quality.core.errors import DataSourceError

if TYPE_CHECKING:
    import pandas as pd


def too_large(uri: str, size: int, limit: int) -> DataSourceError:
    """The error for a source over the size limit, naming the setting to raise."""
    return DataSourceError(
        f"data source {uri} is {size / MB:,.1f} MB ({size:,} bytes), over the limit of"
        f" {limit / MB:,g} MB: if this much data is expected, raise WINE_MAX_SOURCE_MB"
    )


class Scan:
    """sha256, size and UTF-8 validity of a byte stream, fed one chunk at a time.

    UTF-8 is checked incrementally (a character may straddle two chunks); a chunk of plain
    ASCII, which every chunk of the real data is, skips the decoder.
    """

    def __init__(self, source: str, limit: int | None = None) -> None:
        self.source = source
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._pending = b""

    def update(self, chunk: bytes) -> None:
        """Account for the next ``chunk``.

        Raises:
            DataSourceError: The stream went over the limit or is not UTF-8.
        """
        if not chunk:
            return
        if self.limit is not None and self.size + len(chunk) > self.limit:
            raise too_large(self.source, self.size + len(chunk), self.limit)
        self._hash.update(chunk)
        if self._pending or not chunk.isascii():
            self._decode(chunk, final=False)
        self.size += len(chunk)

    def finish(self) -> None:
        """Check that the stream did not end inside a character.

        Raises:
            DataSourceError: It did (the file is not UTF-8).
        """
        self._decode(b"", final=True)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def _decode(self, chunk: bytes, *, final: bool) -> None:
        pending = self._pending
        try:
            self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError as exc:
            data = pending + chunk
            where = self.size - len(pending) + exc.start
            raise not_utf8(self.source, where, data[exc.start : exc.start + 4]) from exc
        self._pending = self._decoder.getstate()[0]


# What is read to check the header line (the real header is 160 bytes).
_HEAD_BYTES = 64 * 1024


def not_utf8(source: str, where: int, found: bytes) -> DataSourceError:
    """The error for bytes that are not UTF-8, naming where."""
    return DataSourceError(
        f"{source} is not UTF-8 text (byte {where}: {found!r}); re-encode the file as UTF-8"
    )


# The columns' types when the file is what it should be. Anything else in a cell (text, a
# fractional score) makes the reader fall back to inferring types, so the expectation suite,
# not the parser, judges the cell and names it.
_TYPES = {**dict.fromkeys(FEATURES, "float64"), TARGET: "int64"}

# Opens the CSV afresh for each pass: a pyarrow buffer, or a file read block by block (not
# memory-mapped, which would count the whole file as the process's resident memory).
Opener = Callable[[], Any]


def _check_head(head: bytes, source: str) -> None:
    """Refuse what the first bytes already show: an empty file, the wrong separator.

    Raises:
        DataSourceError: Empty (or only blank) file, or a comma-separated header.
    """
    text = head.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise DataSourceError(f"{source} is empty")
    header = text.lstrip("\r\n").splitlines()[0]
    if CSV_SEPARATOR not in header and "," in header:
        raise DataSourceError(
            f"{source} looks comma-separated; the wine data uses '{CSV_SEPARATOR}' as separator"
        )


class _Rows:
    """Remembers the first row with the wrong number of fields, to name it in the error."""

    def __init__(self) -> None:
        self.bad: Any = None

    def __call__(self, row: Any) -> str:
        if self.bad is None:
            self.bad = row
        return "error"


def _options(rows: _Rows, *, threads: bool = True, **convert: Any) -> dict[str, Any]:
    import pyarrow.csv as pacsv

    return {
        "read_options": pacsv.ReadOptions(use_threads=threads),
        "parse_options": pacsv.ParseOptions(delimiter=CSV_SEPARATOR, invalid_row_handler=rows),
        "convert_options": pacsv.ConvertOptions(**convert),
    }


def _count(open_input: Opener, rows: _Rows, *, threads: bool = True) -> int:
    """Data rows, every line split and checked, batch by batch (bounded memory).

    Only the first column is converted, to text: the count needs rows, not values.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open_input() as stream:
        first = pacsv.open_csv(stream, **_options(rows, threads=threads)).schema.names[0]
    convert = {"include_columns": [first], "column_types": {first: pa.string()}}
    with open_input() as stream:
        reader = pacsv.open_csv(stream, **_options(rows, threads=threads, **convert))
        return sum(batch.num_rows for batch in reader)


def _unreadable(exc: Exception, rows: _Rows, open_input: Opener, source: str) -> DataSourceError:
    """The error for a file the CSV reader could not split into rows, naming the line."""
    import pyarrow as pa

    if "Empty CSV file" in str(exc):
        return DataSourceError(f"{source} is empty")
    bad = rows.bad
    if bad is not None and bad.number is None:
        # Parsed in parallel, the row's line is unknown: find it again, one block after another.
        serial = _Rows()
        with contextlib.suppress(pa.ArrowInvalid):
            _count(open_input, serial, threads=False)
        bad = serial.bad or bad
    if bad is None:
        return DataSourceError(f"{source} has a malformed line: {exc}")
    with open_input() as stream:
        size = stream.size()
        stream.seek(max(0, size - _HEAD_BYTES))
        tail = stream.read()
    last_line = tail.rsplit(b"\n", 1)[-1].rstrip(b"\r").decode("utf-8", errors="replace")
    if last_line and bad.text == last_line and bad.actual_columns < bad.expected_columns:
        # A download cut short: the last line lost its end (and its newline).
        return DataSourceError(
            f"{source} ends in a truncated line ({bad.actual_columns} of"
            f" {bad.expected_columns} fields and no final newline)"
        )
    line = f"line {bad.number}" if bad.number else "a line"
    return DataSourceError(
        f"{source} has a malformed line: {line} has {bad.actual_columns} fields where the"
        f" header has {bad.expected_columns}: {bad.text[:200]!r}"
    )


def _read_frame(open_input: Opener, source: str) -> pd.DataFrame:
    """Read the whole CSV into typed columns with pyarrow (threads, no text copy).

    Raises:
        DataSourceError: No data rows, or a line with the wrong number of fields.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rows = _Rows()
    try:
        with open_input() as stream:
            names = pacsv.open_csv(stream, **_options(rows)).schema.names
        types = {name: pa.type_for_alias(_TYPES[name]) for name in names if name in _TYPES}
        try:
            with open_input() as stream:
                table = pacsv.read_csv(stream, **_options(rows, column_types=types))
        except pa.ArrowInvalid as exc:
            if rows.bad is not None or "conversion error" not in str(exc):
                raise
            # A cell that is not a number where one should be: read the cells as they are.
            with open_input() as stream:
                table = pacsv.read_csv(stream, **_options(rows))
    except pa.ArrowInvalid as exc:
        raise _unreadable(exc, rows, open_input, source) from exc
    # One 2-D block for the float features (what scikit-learn reads without another copy),
    # allocated by the system rather than pyarrow's pool, which would keep it (1.5 GB at 16 M
    # rows) once the frame is gone; the table's own memory goes back to the system as well.
    frame = table.to_pandas(memory_pool=pa.system_memory_pool())
    del table
    pa.default_memory_pool().release_unused()
    frame.columns = [str(column).strip() for column in frame.columns]
    if frame.empty:
        raise DataSourceError(f"{source} has a header but no data rows")
    return frame


def parse_csv(data: bytes, *, source: str = "data") -> pd.DataFrame:
    """Parse the wine CSV strictly: ``;``-separated, the 12 known columns, nothing silently fixed.

    Column names and cell values are kept as found; the expectation suite judges them. Only
    problems that make the file unreadable as this data set are raised here. Features are read
    as float64 and the score as int64 wherever the cells allow.

    Raises:
        DataSourceError: Empty file, not UTF-8, wrong separator, no data rows, a truncated or
            malformed line.
    """
    import pyarrow as pa

    scan = Scan(source)
    scan.update(data)
    scan.finish()
    _check_head(data[:_HEAD_BYTES], source)
    return _read_frame(lambda: pa.BufferReader(data), source)


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(_HEAD_BYTES)


def read_csv_file(path: Path, *, source: str) -> pd.DataFrame:
    """:func:`parse_csv` of a file, read by pyarrow directly (UTF-8 is the caller's to check:
    :func:`load_snapshot` and :func:`ingest` check it while hashing).

    Raises:
        DataSourceError: As :func:`parse_csv`.
    """
    import pyarrow as pa

    _check_head(_head(path), source)
    return _read_frame(lambda: pa.OSFile(str(path)), source)


def count_rows(path: Path, *, source: str) -> int:
    """The data rows of the CSV at ``path``, every line checked, in bounded memory.

    Raises:
        DataSourceError: As :func:`parse_csv`; cell values are not looked at.
    """
    import pyarrow as pa

    _check_head(_head(path), source)
    rows = _Rows()

    def open_input() -> Any:
        return pa.OSFile(str(path))

    try:
        count = _count(open_input, rows)
    except pa.ArrowInvalid as exc:
        raise _unreadable(exc, rows, open_input, source) from exc
    if count == 0:
        raise DataSourceError(f"{source} has a header but no data rows")
    return count


def decode_csv(data: bytes, *, source: str = "data") -> str:
    """Decode CSV bytes as UTF-8, dropping a byte-order mark.

    Raises:
        DataSourceError: The bytes are not UTF-8 (e.g. Latin-1): refuse rather than misread.
    """
    try:
        # utf-8-sig drops a BOM, so it never becomes part of the first column's name.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise not_utf8(source, exc.start, data[exc.start : exc.start + 4]) from exc
