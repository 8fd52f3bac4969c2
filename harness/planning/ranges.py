"""Honest uncertainty ranges from leave-one-out residuals of a calibration.

Given the leave-one-out ratios ``r_i = measured_i / projected_i`` of a calibration set
(:func:`harness.planning.stack_model.leave_one_out`, or the device ratios of the MLPerf
scoring), the range of a new projection ``v`` of a rate (higher is better) is
``[v * lo, v * hi]`` with::

    lo = exp(min(q10(log r) * w, -MIN_HALF_WIDTH)),  hi = exp(max(q90(log r) * w, +MIN_HALF_WIDTH))
    w  = 1 + SMALL_N_WIDENING / sqrt(n)

``q10``/``q90`` are the 10th/90th percentiles of the log residuals (linear interpolation), ``w``
widens the range when the calibration set is small, and the range always contains the
projection with at least ``MIN_HALF_WIDTH`` on each side in log space (never zero width, even
when every residual is 0 or ``n = 1``). With fewer than :data:`MIN_POINTS` residuals the prior
range ``x[1/3, 3]`` is returned. Latencies take the inverse range (:func:`latency_range`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: at least +-10 % around any projection
MIN_HALF_WIDTH = math.log(1.1)
#: widening factor numerator: w = 1 + SMALL_N_WIDENING / sqrt(n)
SMALL_N_WIDENING = 2.0
MIN_POINTS = 3
PRIOR = (1 / 3, 3.0)


@dataclass(frozen=True)
class RatioRange:
    """Multipliers of a projected rate: measured is expected within ``[low, high] x projected``."""

    low: float
    high: float
    n: int
    method: str

    def apply_rate(self, value: float) -> tuple[float, float]:
        return value * self.low, value * self.high

    def apply_latency(self, value: float) -> tuple[float, float]:
        return value / self.high, value / self.low


def ratio_range(ratios: Sequence[float], what: str = "leave-one-out") -> RatioRange:
    """The range from ``ratios`` (measured / projected); see the module docstring."""
    logs = np.log(np.asarray([r for r in ratios if r > 0 and math.isfinite(r)], dtype=float))
    n = int(logs.size)
    if n < MIN_POINTS:
        return RatioRange(PRIOR[0], PRIOR[1], n, f"prior x[1/3, 3] ({n} {what} residual(s), fewer than {MIN_POINTS})")
    w = 1.0 + SMALL_N_WIDENING / math.sqrt(n)
    lo = min(float(np.quantile(logs, 0.1)) * w, -MIN_HALF_WIDTH)
    hi = max(float(np.quantile(logs, 0.9)) * w, MIN_HALF_WIDTH)
    return RatioRange(
        math.exp(lo),
        math.exp(hi),
        n,
        f"10th..90th percentile of {n} {what} residuals, widened x{w:.2f} for n, at least +-10 %",
    )


def latency_range(value: float, rr: RatioRange) -> tuple[float, float]:
    """Latency bounds for a projected latency ``value`` (the rate range inverted)."""
    return rr.apply_latency(value)
