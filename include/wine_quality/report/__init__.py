"""Report: the night's summary, built from every step's result (``summary``), and the run note
rendered from it (``note``)."""
