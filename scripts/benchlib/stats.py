"""Percentiles and ratios, the way the report states them."""

from __future__ import annotations

import math
import statistics
from typing import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN when there are no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[min(rank, len(ordered) - 1)]


def p50(samples: Sequence[float]) -> float:
    return percentile(samples, 0.50)


def p99(samples: Sequence[float]) -> float:
    return percentile(samples, 0.99)


def stdev(samples: Sequence[float]) -> float:
    return statistics.stdev(samples) if len(samples) > 1 else math.nan


def ratio(numerator: float, denominator: float) -> float:
    if denominator == 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator
