"""Compare: scoring a candidate against production on the holdout (``evaluate``), the
statistics it rests on (``stats``, ``drift``), and what a decision leaves behind: its record,
model card and plots (``record``, ``card``, ``plots``)."""
