"""Ingest: strict parsing, immutable snapshots, and the sha256 that ties models to bytes."""

from __future__ import annotations

import hashlib
import re
import tracemalloc
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from wine_quality.core.config import COLUMNS, DEFAULT_MAX_SOURCE_MB, FEATURES, TARGET, Settings
from wine_quality.core.errors import DataSourceError, SettingsError
from wine_quality.data import ingest as data
from wine_quality.data import storage
from wine_quality.data.ingest import (
    SNAPSHOT_FILENAME,
    ingest,
    load_snapshot,
    read_bytes,
    snapshot_uri,
)
from wine_quality.data.parse import decode_csv, parse_csv
from wine_quality.data.storage import publish_once, write_once

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


def test_features_are_read_as_float64_and_the_score_as_int64(wine_frame):
    assert {str(wine_frame[column].dtype) for column in FEATURES} == {"float64"}
    assert str(wine_frame[TARGET].dtype) == "int64"


def test_a_short_line_inside_the_file_is_refused_naming_its_line(wine_csv):
    lines = wine_csv.read_bytes().split(b"\n")
    lines[500] = b"7.4;0.7;0"
    with pytest.raises(DataSourceError, match=r"malformed line: line 501 has 3 fields"):
        parse_csv(b"\n".join(lines))


def _grown(wine_csv: Path, copies: int) -> bytes:
    """The real file with its data rows repeated: a bigger source of the same data."""
    header, body = wine_csv.read_bytes().split(b"\n", 1)
    return header + b"\n" + body * copies


def test_a_source_over_the_limit_is_refused_naming_size_limit_and_setting(tmp_path, wine_csv):
    staging = tmp_path / "staging"
    with pytest.raises(DataSourceError) as raised:
        ingest(str(wine_csv), str(staging), "k", max_source_bytes=50_000)
    message = str(raised.value)
    assert "84,199 bytes" in message
    assert "over the limit of 0.0476837 MB" in message
    assert "raise WINE_MAX_SOURCE_MB" in message
    assert not list(staging.rglob("*.csv*")), "nothing is staged for a refused source"


def test_the_limit_comes_from_wine_max_source_mb(tmp_path, wine_csv, monkeypatch):
    source = tmp_path / "grown.csv"
    source.write_bytes(_grown(wine_csv, 15))  # 1.2 MiB
    monkeypatch.setenv("WINE_MAX_SOURCE_MB", "1")
    with pytest.raises(DataSourceError, match="over the limit of 1 MB"):
        ingest(str(source), str(tmp_path / "staging"), "k")
    monkeypatch.setenv("WINE_MAX_SOURCE_MB", "2")
    assert ingest(str(source), str(tmp_path / "staging"), "k").rows == 15 * 1599


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, DEFAULT_MAX_SOURCE_MB), ("", DEFAULT_MAX_SOURCE_MB), ("512", 512)],
)
def test_max_source_mb_setting(value, expected):
    settings = Settings.from_env({} if value is None else {"WINE_MAX_SOURCE_MB": value})
    assert settings.max_source_mb == expected
    assert settings.max_source_bytes == expected * 1024 * 1024


@pytest.mark.parametrize("value", ["0", "-5", "2GB", "1.5"])
def test_a_max_source_mb_that_is_not_a_positive_whole_number_is_refused(value):
    with pytest.raises(SettingsError, match=f"WINE_MAX_SOURCE_MB='{re.escape(value)}'"):
        Settings.from_env({"WINE_MAX_SOURCE_MB": value})


def test_ingest_streams_the_source_in_chunks(tmp_path, wine_csv, monkeypatch):
    monkeypatch.setattr(data, "CHUNK_BYTES", 4096)
    raw = wine_csv.read_bytes()
    result = ingest(str(wine_csv), str(tmp_path), "k")
    assert (result.sha256, result.size_bytes, result.rows) == (EXPECTED_SHA, len(raw), 1599)
    assert Path(result.snapshot_uri).read_bytes() == raw
    assert [p.name for p in Path(result.snapshot_uri).parent.iterdir()] == [SNAPSHOT_FILENAME]


def test_utf8_is_checked_across_chunk_boundaries(tmp_path, wine_csv, monkeypatch):
    monkeypatch.setattr(data, "CHUNK_BYTES", 4096)
    raw = wine_csv.read_bytes()
    # A two-byte character split by the chunk boundary (bytes 4095 and 4096) is read...
    straddling = raw[:4095] + "é".encode() + raw[4095:]
    source = tmp_path / "straddling.csv"
    source.write_bytes(straddling)
    assert ingest(str(source), str(tmp_path / "a"), "k").size_bytes == len(raw) + 2
    # ...but a Latin-1 byte anywhere is refused, naming where it is.
    source.write_bytes(raw[:5000] + b"\xe9" + raw[5000:])
    with pytest.raises(DataSourceError, match=r"not UTF-8 text \(byte 5000: b'\\xe9"):
        ingest(str(source), str(tmp_path / "b"), "k")


def test_ingest_never_holds_the_source_in_memory(tmp_path, wine_csv, monkeypatch):
    monkeypatch.setattr(data, "CHUNK_BYTES", 1024 * 1024)
    source = tmp_path / "grown.csv"
    source.write_bytes(_grown(wine_csv, 300))  # 25 MB
    tracemalloc.start()
    try:
        result = ingest(str(source), str(tmp_path / "staging"), "k")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.rows == 300 * 1599
    # A chunk or two, never the 25 MB file (the old ingest held it twice: bytes and text).
    assert peak < 5 * 1024 * 1024, f"peak Python allocation {peak / 2**20:.1f} MiB"


def test_s3_source_and_staging_stream_through_multipart_and_stay_write_once(
    tmp_path, wine_csv, monkeypatch
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(storage, "MULTIPART_BYTES", 5 * 1024 * 1024)  # S3's smallest part
    grown = _grown(wine_csv, 80)  # 6.7 MB: two parts
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="wine-data")
        client.put_object(Bucket="wine-data", Key="in/wine.csv", Body=grown)
        first = ingest("s3://wine-data/in/wine.csv", "s3://wine-data/stage", "k", s3_client=client)
        assert (first.sha256, first.rows) == (hashlib.sha256(grown).hexdigest(), 80 * 1599)
        assert not first.reused
        stored = client.get_object(Bucket="wine-data", Key="stage/raw/k/winequality-red.csv")
        assert stored["Body"].read() == grown
        # The source changes; the snapshot of this key does not, and a rerun reuses it.
        client.put_object(Bucket="wine-data", Key="in/wine.csv", Body=wine_csv.read_bytes())
        again = ingest("s3://wine-data/in/wine.csv", "s3://wine-data/stage", "k", s3_client=client)
        assert again.reused
        assert again.sha256 == first.sha256
        # A late writer (a racing attempt) loses, whether its upload is one part or several.
        other = tmp_path / "other.csv"
        other.write_bytes(grown[:-10])
        assert not publish_once(other, first.snapshot_uri, s3_client=client)
        assert not publish_once(wine_csv, first.snapshot_uri, s3_client=client)
        assert client.list_multipart_uploads(Bucket="wine-data").get("Uploads") is None
        frame = load_snapshot(first.snapshot_uri, first.sha256, s3_client=client)
        assert len(frame) == 80 * 1599
