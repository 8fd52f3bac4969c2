"""MLPerf early stopping (``loadgen/early_stopping.cc``): percentile claims that hold at a confidence.

Each query is a Bernoulli trial "under the latency bound" with probability ``p`` (the target
percentile). With ``t`` queries over the bound, the run supports the percentile claim at
confidence ``c`` once the ``h`` queries under it satisfy ``I_p(h, t + 1) <= 1 - c`` (regularised
incomplete beta). :func:`early_stopping_percentile` reports the conservative order statistic
that this allows (single-stream); :func:`early_stopping_over_latency` is LoadGen Server's test
of the count of queries over a latency bound. Queries not completed count as ``+inf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.core.stats import _as_1d, _check_confidence, percentile_index


def _criterion(h: Any, t: Any, p: float) -> Any:
    """``I_p(h, t + 1)``: probability of seeing >= h of h + t queries under the bound if the
    true fraction under the bound were exactly ``p``."""
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy.special import betainc

    return betainc(h, np.asarray(t) + 1.0, p)


def _check_p(p: float) -> None:
    if not (0.0 < p < 1.0):
        raise ValueError(f"early stopping percentile p must be in (0, 1), got {p!r}")


def early_stopping_min_passing(t: int, p: float, confidence: float = 0.99) -> int:
    """Smallest ``h`` (queries under the bound) with ``I_p(h, t + 1) <= 1 - confidence``."""
    _check_p(p)
    _check_confidence(confidence)
    if t < 0:
        raise ValueError(f"t must be >= 0, got {t}")
    target = 1.0 - confidence
    lo, hi = 0, 1
    while _criterion(hi, t, p) > target:  # I_p(h, .) decreases in h
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _criterion(mid, t, p) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def early_stopping_min_queries(p: float, confidence: float = 0.99) -> int:
    """Fewest queries for which the early-stopping estimate exists.

    The conservative estimate is an observed latency, so at least one query lies at or above
    it (``t >= 1``); the minimum is ``h_min(t=1) + 1``. Gives p90 -> 64, p99 -> 662,
    p99.9 -> 6636 at confidence 0.99 (the MLPerf figures).
    """
    return early_stopping_min_passing(1, p, confidence) + 1


@dataclass(frozen=True)
class EarlyStoppingResult:
    """Outcome of :func:`early_stopping_percentile`.

    ``conservative_value`` is the latency (same unit as the input) that the claim
    "the p-quantile is at most this" supports at ``confidence``; NaN when ``valid`` is False.
    ``t_over`` queries are at or above it; ``index`` is its 0-based position in sorted order;
    ``overshoot_index = index - percentile_index(n, p)`` is how many order statistics it sits
    above the plain (LoadGen) percentile.
    """

    valid: bool
    n: int
    min_queries: int
    conservative_value: float
    p: float
    confidence: float
    t_over: int = 0
    index: int = -1
    overshoot_index: int = 0
    percentile_value: float = math.nan
    n_incomplete: int = 0
    reason: str = ""


def early_stopping_percentile(latencies: Any, p: float, confidence: float = 0.99) -> EarlyStoppingResult:
    """MLPerf early stopping for the ``p``-quantile of ``latencies``.

    Every query is a Bernoulli trial "under the latency bound L". With ``t`` queries at or
    above L and ``h = n - t`` under it, the claim "p-quantile <= L" holds at ``confidence``
    once ``I_p(h, t + 1) <= 1 - confidence``. The reported value is the smallest observed L
    that satisfies this: ``sorted[n - t]`` for the largest such ``t`` (``t`` >= 1).

    Queries not completed by the end of the window are passed as ``+inf`` and count as
    over every bound (``n_incomplete`` of them). When the supported value is one of them the
    claim is vacuous: ``valid`` is False, ``conservative_value`` is ``inf`` and ``reason``
    says why.
    """
    a = np.sort(_as_1d(latencies, "latencies").astype(float))
    _check_p(p)
    _check_confidence(confidence)
    if np.isnan(a).any():
        raise ValueError("latencies: NaN is not a latency (use +inf for a query that never completed)")
    n = int(a.size)
    k_inf = int(np.isposinf(a).sum())
    min_q = early_stopping_min_queries(p, confidence)
    pv = float(a[percentile_index(n, p)]) if n else math.nan
    if n < min_q:
        return EarlyStoppingResult(
            False,
            n,
            min_q,
            math.nan,
            p,
            confidence,
            percentile_value=pv,
            n_incomplete=k_inf,
            reason=f"{n} queries < {min_q} needed",
        )
    t = np.arange(1, n, dtype=float)  # t = 1 .. n-1, h = n - t
    ok = _criterion(n - t, t, p) <= (1.0 - confidence)  # monotone: true for small t
    t_best = int(t[ok].max()) if ok.any() else 0
    if t_best == 0:
        return EarlyStoppingResult(
            False,
            n,
            min_q,
            math.nan,
            p,
            confidence,
            percentile_value=pv,
            n_incomplete=k_inf,
            reason="no order statistic satisfies the criterion",
        )
    idx = n - t_best
    value = float(a[idx])
    finite = math.isfinite(value)
    return EarlyStoppingResult(
        valid=finite,
        n=n,
        min_queries=min_q,
        conservative_value=value,
        p=p,
        confidence=confidence,
        t_over=t_best,
        index=idx,
        overshoot_index=idx - percentile_index(n, p),
        percentile_value=pv,
        n_incomplete=k_inf,
        reason="" if finite else f"the supported order statistic is one of {k_inf} incomplete queries (+inf)",
    )


@dataclass(frozen=True)
class OverLatencyResult:
    """Outcome of :func:`early_stopping_over_latency` (LoadGen Server's latency verdict).

    ``over`` queries had latency ``> bound`` (``incomplete`` of them never completed),
    ``n - over`` were within it; the test needs at least ``min_passing`` within the bound for
    ``over`` queries over it. ``bound`` is in the unit of the latencies.
    """

    passed: bool
    n: int
    over: int
    incomplete: int
    min_passing: int
    bound: float
    p: float
    confidence: float


def early_stopping_over_latency(latencies: Any, bound: float, p: float, confidence: float = 0.99) -> OverLatencyResult:
    """LoadGen Server's rule: does "the ``p``-quantile of latency is at most ``bound``" hold?

    Counts ``t`` queries with latency ``> bound`` (a ``+inf`` entry, a query not completed by
    the end of the window, always counts) and passes when the ``h = n - t`` queries within the
    bound satisfy the early-stopping criterion ``I_p(h, t + 1) <= 1 - confidence``, i.e.
    ``h >= early_stopping_min_passing(t, p, confidence)``.
    """
    a = _as_1d(latencies, "latencies").astype(float)
    _check_p(p)
    _check_confidence(confidence)
    if np.isnan(a).any() or math.isnan(bound):
        raise ValueError("latencies and bound must not be NaN (use +inf for a query that never completed)")
    n = int(a.size)
    over = int(np.sum(a > bound))
    need = early_stopping_min_passing(over, p, confidence)
    return OverLatencyResult(
        passed=bool(n > 0 and n - over >= need),
        n=n,
        over=over,
        incomplete=int(np.isposinf(a).sum()),
        min_passing=need,
        bound=float(bound),
        p=p,
        confidence=confidence,
    )
