"""Every kind of broken source is refused by the pipeline's own ingest + validation code, with a
message that names the problem; merely re-encoded files are read exactly like the original."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import pytest

from tests.data.corpus import CORPUS, EQUIVALENT, BrokenInput
from tests.reliability import record
from wine_quality.core.errors import DataSourceError, DataValidationError, PipelineGateError
from wine_quality.data.ingest import ingest, load_snapshot, read_bytes
from wine_quality.validation import validate_frame


def run_gate(source: Path, staging: Path) -> None:
    """What the DAG's ingest and validate tasks do, without Airflow or MLflow."""
    ingested = ingest(str(source), str(staging), "corpus")
    validate_frame(load_snapshot(ingested.snapshot_uri, ingested.sha256)).raise_for_failure()


@pytest.mark.parametrize("case", CORPUS, ids=[c.kind for c in CORPUS])
def test_broken_input_is_refused_with_a_reason(case: BrokenInput, wine_csv, tmp_path):
    source = tmp_path / "broken.csv"
    source.write_bytes(case.mutate(wine_csv.read_bytes()))
    with pytest.raises((DataSourceError, DataValidationError)) as raised:
        run_gate(source, tmp_path / "staging")
    message = str(raised.value)
    for words in case.expect:
        assert words in message, f"{case.kind}: {words!r} not in {message!r}"
    stage = "ingest"
    if isinstance(raised.value, DataSourceError):
        # An unreadable source is refused before a snapshot of it is kept.
        assert not list((tmp_path / "staging").rglob("*.csv"))
    else:
        stage = "validation"
    record(
        "bad data", case.kind, f"source: {case.kind.replace('-', ' ')}",
        f"refused at {stage}: {message[:140]}",
        f"error names {', '.join(map(repr, case.expect))}; no snapshot kept if unreadable",
    )  # fmt: skip


def test_corpus_covers_at_least_fifteen_kinds():
    assert len({case.kind for case in CORPUS}) >= 15


@pytest.mark.parametrize("kind", sorted(EQUIVALENT))
def test_re_encoded_file_is_read_exactly_like_the_original(kind, wine_csv, wine_frame, tmp_path):
    source = tmp_path / f"{kind}.csv"
    source.write_bytes(EQUIVALENT[kind](wine_csv.read_bytes()))
    ingested = ingest(str(source), str(tmp_path / "staging"), kind)
    frame = load_snapshot(ingested.snapshot_uri, ingested.sha256)
    assert list(frame.columns) == list(wine_frame.columns)
    assert frame.equals(wine_frame)
    assert validate_frame(frame).success
    record(
        "bad data", kind, f"source re-encoded: {kind}", "read exactly like the original",
        "same columns (no BOM in a name) and identical values; suite passes",
    )  # fmt: skip


def test_missing_source_is_refused(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist") as raised:
        ingest(str(tmp_path / "nowhere.csv"), str(tmp_path / "staging"), "k")
    assert not (tmp_path / "staging").exists() or not list((tmp_path / "staging").rglob("*"))
    record(
        "bad data", "missing-source", "source: a path that does not exist",
        f"refused at ingest: {str(raised.value)[:140]}",
        "DataSourceError (fails at once, no retry); nothing staged",
    )  # fmt: skip


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):
        if self.path == "/slow.csv":
            time.sleep(3)
        if self.path == "/missing.csv":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        if self.path != "/no-length.csv":  # else HTTP/1.0 ends the body by closing
            self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_source(wine_csv):
    """A real HTTP server on loopback serving the data, a 404 and a path that hangs."""
    _Handler.body = wine_csv.read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_source_is_read(http_source, tmp_path):
    result = ingest(f"{http_source}/wine.csv", str(tmp_path), "k")
    assert result.rows == 1599


@pytest.mark.parametrize("path", ["/wine.csv", "/no-length.csv"], ids=["length", "no-length"])
def test_http_source_over_the_limit_is_refused(http_source, tmp_path, path):
    # With a Content-Length the size is known before a byte is read; without, it is counted.
    with pytest.raises(DataSourceError, match=r"over the limit .* raise WINE_MAX_SOURCE_MB"):
        ingest(f"{http_source}{path}", str(tmp_path), "k", max_source_bytes=40_000)
    assert not list(tmp_path.rglob("*.csv*"))
    assert ingest(f"{http_source}{path}", str(tmp_path), "k").rows == 1599


def test_http_404_is_a_clear_refusal(http_source):
    with pytest.raises(DataSourceError, match="HTTP 404"):
        read_bytes(f"{http_source}/missing.csv")


def test_http_timeout_is_transient_not_a_gate_failure(http_source):
    # A timeout may pass on a retry, so it must not be a PipelineGateError (which fails at once).
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=r"did not answer within 0\.5 s") as raised:
        read_bytes(f"{http_source}/slow.csv", timeout=0.5)
    assert not isinstance(raised.value, PipelineGateError)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5
    record(
        "bad data", "url-timeout", "source: an http:// URL that never answers (server sleeps 3 s)",
        f"gave up after {elapsed:.1f} s: {str(raised.value)[:120]}",
        "ConnectionError, not a gate failure: the task retries it with back-off",
    )  # fmt: skip
