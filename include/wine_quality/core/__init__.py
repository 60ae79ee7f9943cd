"""What every stage shares: constants (``config``), errors, the MLflow client and its one
``with`` block (``tracking``), task hand-offs (``handoff``), log lines and imports (``logs``,
``runtime``). Nothing here knows a stage; every stage may import it."""
