"""The data asset's URI and which data a run reads: setting, then asset event, then environment."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from wine_quality.core.config import DEFAULT_DATA_URI
from wine_quality.data.source import choose_data_uri, data_asset_uri


@pytest.mark.parametrize(
    ("env", "uri"),
    [
        ({"WINE_DATA_ASSET_URI": "s3://wine-data/incoming/wine.csv",
          "WINE_DATA_URI": "s3://other/wine.csv"}, "s3://wine-data/incoming/wine.csv"),
        ({"WINE_DATA_URI": "s3://wine-data/incoming/wine.csv"},
         "s3://wine-data/incoming/wine.csv"),
        ({"WINE_DATA_URI": "https://example.org/wine.csv"}, "https://example.org/wine.csv"),
        ({"WINE_DATA_URI": "/data/wine quality.csv"}, "file:///data/wine%20quality.csv"),
        ({}, DEFAULT_DATA_URI),
        ({"WINE_DATA_ASSET_URI": "", "WINE_DATA_URI": ""}, DEFAULT_DATA_URI),
    ],
    ids=["explicit", "s3", "https", "absolute-path", "unset", "empty"],
)  # fmt: skip
def test_asset_uri(env, uri):
    assert data_asset_uri(env) == uri


def test_a_relative_path_becomes_an_absolute_file_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Never touched (the DAG is parsed with this): it need not exist.
    assert data_asset_uri({"WINE_DATA_URI": "../data/wine.csv"}) == (
        (tmp_path.parent / "data" / "wine.csv").as_uri()
    )
    assert not Path("../data/wine.csv").exists()


EARLY = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
LATE = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
ENV = "/srv/wine.csv"


@pytest.mark.parametrize(
    ("param", "events", "uri", "origin"),
    [
        # The run's own setting beats everything.
        ("s3://b/param.csv", [(LATE, {"data_uri": "s3://b/event.csv"})], "s3://b/param.csv",
         "the run's data_uri setting"),
        # An asset event that names the new data beats the environment; the newest wins.
        (None, [(LATE, {"data_uri": "s3://b/late.csv"}), (EARLY, {"data_uri": "s3://b/early.csv"})],
         "s3://b/late.csv", "the asset event of 2026-11-20T09:30:00+00:00"),
        # An empty setting (the form's blank field) is not a setting.
        ("", [(EARLY, {"data_uri": "s3://b/early.csv"})], "s3://b/early.csv",
         "the asset event of 2026-11-20T02:00:00+00:00"),
        # An event that names nothing usable does not count; newer ones without a URI neither.
        (None, [(EARLY, {"data_uri": "s3://b/early.csv"}), (LATE, {"rows": 1599})],
         "s3://b/early.csv", "the asset event of 2026-11-20T02:00:00+00:00"),
        (None, [(LATE, {"data_uri": 42}), (LATE, {"data_uri": ""}), (EARLY, None)], ENV,
         "the environment (WINE_DATA_URI or its default)"),
        # A nightly run: no events.
        (None, [], ENV, "the environment (WINE_DATA_URI or its default)"),
    ],
    ids=["param", "newest-event", "blank-param", "event-without-uri", "unusable-events",
         "no-events"],
)  # fmt: skip
def test_which_data_a_run_reads(param, events, uri, origin):
    choice = choose_data_uri(param, events, ENV)
    assert (choice.uri, choice.origin) == (uri, origin)
