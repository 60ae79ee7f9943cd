"""The one percentile the project quotes: the canary's latency budget and ``make bench``."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a p95 of 20 samples is a real sample).

    Returns:
        The smallest value with at least ``q`` percent of the values at or below it; NaN when
        there are no values.
    """
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
