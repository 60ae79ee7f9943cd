"""Ingest: strict parsing, immutable snapshots, and the sha256 that ties models to bytes."""

from __future__ import annotations

import hashlib

import pytest

from wine_quality.config import COLUMNS
from wine_quality.data import (
    decode_csv,
    ingest,
    load_snapshot,
    parse_csv,
    read_bytes,
    snapshot_uri,
    write_once,
)
from wine_quality.errors import DataSourceError

EXPECTED_SHA = "4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e"


def test_real_file_parses_to_the_documented_shape(wine_csv):
    raw = wine_csv.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == EXPECTED_SHA
    frame = parse_csv(raw)
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 1599


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: b"", "is empty"),
        (lambda raw: raw.split(b"\n", 1)[0] + b"\n", "no data rows"),
        (lambda raw: raw.replace(b";", b","), "comma-separated"),
        (lambda raw: raw.decode().replace("ü", "").encode("utf-16"), "not UTF-8"),
        (lambda raw: raw.rstrip(b"\n").rsplit(b";", 3)[0], "truncated line"),
        (lambda raw: raw + b"1;2;3;4;5;6;7;8;9;10;11;12;13;14\n", "malformed line"),
    ],
    ids=["empty", "header-only", "comma", "utf16", "truncated", "extra-fields"],
)
def test_unreadable_inputs_are_refused_with_a_reason(wine_csv, mutate, message):
    with pytest.raises(DataSourceError, match=message):
        parse_csv(mutate(wine_csv.read_bytes()))


def test_bom_and_crlf_are_read_not_misread(wine_csv):
    raw = wine_csv.read_bytes()
    frame = parse_csv(b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n"))
    assert list(frame.columns) == list(COLUMNS)  # the BOM is not part of "fixed acidity"
    assert frame.equals(parse_csv(raw))


def test_latin1_bytes_are_refused_not_guessed():
    with pytest.raises(DataSourceError, match="re-encode the file as UTF-8"):
        decode_csv('"fixed acidity";"qualit\xe9"\n'.encode("latin-1"))


def test_missing_local_source_and_unknown_scheme(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist"):
        read_bytes(str(tmp_path / "nope.csv"))
    with pytest.raises(DataSourceError, match="unsupported data source scheme"):
        read_bytes("ftp://example.invalid/wine.csv")


def test_snapshot_is_written_once_and_reused(tmp_path, wine_csv):
    staging = str(tmp_path / "staging")
    first = ingest(str(wine_csv), staging, "2026-11-29T02:00:00+00:00")
    assert first.sha256 == EXPECTED_SHA
    assert first.rows == 1599
    assert not first.reused
    # A rerun for the same key must not refetch, even if the source changed meanwhile.
    changed = tmp_path / "changed.csv"
    changed.write_bytes(wine_csv.read_bytes()[:-200])
    second = ingest(str(changed), staging, "2026-11-29T02:00:00+00:00")
    assert second.reused
    assert second.sha256 == first.sha256
    assert second.snapshot_uri == first.snapshot_uri


def test_write_once_never_overwrites(tmp_path):
    target = str(tmp_path / "a" / "b.csv")
    assert write_once(target, b"one")
    assert not write_once(target, b"two")
    assert (tmp_path / "a" / "b.csv").read_bytes() == b"one"


def test_snapshot_key_is_made_path_safe():
    uri = snapshot_uri("s3://wine-data", "manual__2026-11-29T02:00:00+00:00")
    assert uri == "s3://wine-data/raw/manual__2026-11-29T02_00_00_00_00/winequality-red.csv"


def test_load_snapshot_refuses_changed_bytes(tmp_path, wine_csv):
    result = ingest(str(wine_csv), str(tmp_path), "k")
    with open(result.snapshot_uri, "ab") as handle:
        handle.write(b"7.4;0.7;0;1.9;0.076;11;34;0.9978;3.51;0.56;9.4;5\n")
    with pytest.raises(DataSourceError, match="changed since ingest"):
        load_snapshot(result.snapshot_uri, result.sha256)
