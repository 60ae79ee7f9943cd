"""Ingest: where the night's data comes from (``source``), how it is read and checked while it
streams (``parse``), copied into staging (``storage``, ``ingest``), and the stable holdout every
candidate and production are scored on (``holdout``)."""
