"""Statistics on raw timings: percentiles, bootstrap CIs, MLPerf early stopping, steady state.

Pure functions on NumPy arrays (integer nanoseconds or floats); no torch, no I/O.

Percentile methods (state the one you report; tools disagree):

* ``"loadgen"`` (default): ``sorted[floor(n * q)]``, index clamped to ``n - 1``. MLPerf
  LoadGen's definition; always an observed value.
* ``"nearest-rank-perf-analyzer"``: ``sorted[round(q * (n - 1))]`` with round-half-up, as
  Triton perf_analyzer does.
* ``"linear"``: NumPy's default linear interpolation between order statistics.

Confidence intervals for quantiles use the *exact* percentile bootstrap of an order
statistic: the bootstrap distribution of ``sorted*[k]`` over resamples of size ``n`` is
``P(sorted*[k] <= x_(j)) = P(Binomial(n, F_n(x_(j))) >= k + 1)``, so its quantiles are
computed directly instead of by Monte Carlo (the limit of infinitely many resamples, O(n)
time, deterministic). Other statistics go through :func:`scipy.stats.bootstrap`. That
interval assumes independent values; for a series in time order whose values are correlated
(open-loop latencies) use :func:`harness.core.batch_means.quantile_ci_batch_means`.

Queries not completed by the end of a window are **counted, not dropped** (LoadGen's rule):
they enter percentiles and early stopping as ``+inf`` latencies, so a tail percentile that
lands on one is reported as ``inf``, never as a finite number. Mean, min, max and std cover
the completed queries only and say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

PercentileMethod = Literal["loadgen", "nearest-rank-perf-analyzer", "linear"]
PERCENTILE_METHODS: tuple[str, ...] = ("loadgen", "nearest-rank-perf-analyzer", "linear")

PERCENTILE_METHOD_DOC = (
    "loadgen: sorted[floor(n*q)] (clamped to n-1), the MLPerf LoadGen order statistic; "
    "CI: exact percentile bootstrap of that order statistic"
)

DEFAULT_QS: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99, 0.999)

#: above this many samples the BCa bootstrap (whose jackknife is O(n^2)) falls back to the
#: percentile method
BCA_MAX_N = 5000
#: rows of the resample matrix scipy builds at once (memory bound: batch * n floats)
_BOOT_BATCH_ELEMENTS = 20_000_000

NS_PER_MS = 1e6


# --------------------------------------------------------------------------- percentiles


def _as_1d(values: Any, name: str = "values") -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name}: expected numbers, got dtype {a.dtype}")
    return a


def _check_q(q: float) -> None:
    if not (0.0 <= q <= 1.0) or math.isnan(q):
        raise ValueError(f"percentile q must be in [0, 1], got {q!r}")


def percentile_index(n: int, q: float, method: PercentileMethod = "loadgen") -> int:
    """0-based order-statistic index used by ``method`` for ``n`` sorted values.

    Only defined for the order-statistic methods (``loadgen``, ``nearest-rank-perf-analyzer``).
    """
    _check_q(q)
    if n <= 0:
        raise ValueError("percentile of an empty sample is undefined")
    if method == "loadgen":
        idx = int(math.floor(n * q))
    elif method == "nearest-rank-perf-analyzer":
        idx = int(math.floor(q * (n - 1) + 0.5))
    else:
        raise ValueError(
            f"percentile method {method!r} has no single order statistic; "
            f"order-statistic methods: loadgen, nearest-rank-perf-analyzer"
        )
    return min(max(idx, 0), n - 1)


def percentile(values: Any, q: float, method: PercentileMethod = "loadgen") -> float:
    """The ``q``-quantile (``q`` in [0, 1]) of ``values`` by ``method`` (see module doc)."""
    a = _as_1d(values)
    _check_q(q)
    if a.size == 0:
        raise ValueError("percentile of an empty sample is undefined")
    if method == "linear":
        return float(np.quantile(a, q, method="linear"))
    if method not in PERCENTILE_METHODS:
        raise ValueError(f"unknown percentile method {method!r}; allowed: {', '.join(PERCENTILE_METHODS)}")
    idx = percentile_index(a.size, q, method)
    return float(np.partition(a, idx)[idx])


def percentile_key(q: float) -> str:
    """``0.5 -> "p50"``, ``0.999 -> "p99.9"``."""
    return f"p{q * 100:.10g}"


def percentiles(
    values: Any, qs: Sequence[float] = DEFAULT_QS, method: PercentileMethod = "loadgen"
) -> dict[str, float]:
    """Several percentiles at once, keyed ``"p50"``, ``"p90"``, ``"p95"``, ``"p99"``, ``"p99.9"``."""
    a = _as_1d(values)
    if a.size == 0:
        raise ValueError("percentiles of an empty sample are undefined")
    s = np.sort(a)
    out: dict[str, float] = {}
    for q in qs:
        if method == "linear":
            out[percentile_key(q)] = float(np.quantile(s, q, method="linear"))
        else:
            out[percentile_key(q)] = float(s[percentile_index(s.size, q, method)])
    return out


# --------------------------------------------------------------------------- bootstrap

Statistic = Callable[..., Any] | str | float


@dataclass(frozen=True)
class QuantileStat:
    """A quantile statistic usable by :func:`bootstrap_ci` and the regression gate."""

    q: float
    method: PercentileMethod = "loadgen"

    def __call__(self, x: np.ndarray, axis: int = -1) -> np.ndarray | float:
        x = np.asarray(x)
        if self.method == "linear":
            return np.asarray(np.quantile(x, self.q, axis=axis, method="linear"))
        idx = percentile_index(x.shape[axis], self.q, self.method)
        return np.asarray(np.take(np.partition(x, idx, axis=axis), idx, axis=axis))


def resolve_statistic(statistic: Statistic) -> Callable[..., Any]:
    """``"median"``, ``"mean"``, ``"p99"``, ``"p99.9"``, a float quantile, or a callable
    ``f(x, axis=-1)`` -> the callable."""
    if callable(statistic):
        return statistic
    if isinstance(statistic, float):
        return QuantileStat(statistic)
    if isinstance(statistic, str):
        s = statistic.strip().lower()
        if s in ("median", "p50"):
            return QuantileStat(0.5)
        if s == "mean":
            return _mean
        if s.startswith("p"):
            try:
                q = float(s[1:]) / 100.0
            except ValueError:
                pass
            else:
                if 0.0 <= q <= 1.0:
                    return QuantileStat(q)
    raise ValueError(
        f"unknown statistic {statistic!r}; allowed: 'median', 'mean', 'pNN' (e.g. 'p99', 'p99.9'), "
        "a float quantile in [0, 1], or a callable f(x, axis=-1)"
    )


def _mean(x: np.ndarray, axis: int = -1) -> Any:
    return np.mean(x, axis=axis)


def order_statistic_bootstrap_cdf(sorted_values: np.ndarray, k: int) -> np.ndarray:
    """Exact bootstrap CDF of the 0-based order statistic ``k`` at each sorted value.

    ``cdf[j] = P(sorted*[k] <= sorted[j])`` over resamples (with replacement) of size ``n``;
    ties are handled by counting all values ``<= sorted[j]``.
    """
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy.stats import binom

    n = sorted_values.size
    counts = np.searchsorted(sorted_values, sorted_values, side="right")  # #{x <= x_(j)}
    # P(#{x* <= x_(j)} >= k + 1) with #{...} ~ Binomial(n, counts/n)
    return np.asarray(binom.sf(k, n, counts / n), dtype=float)


def sample_order_statistic(sorted_values: np.ndarray, k: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws from the exact bootstrap distribution of the order statistic ``k`` (inverse CDF)."""
    cdf = order_statistic_bootstrap_cdf(sorted_values, k)
    cdf[-1] = 1.0
    u = rng.random(size)
    return np.asarray(sorted_values[np.searchsorted(cdf, u, side="left").clip(0, sorted_values.size - 1)], dtype=float)


def quantile_ci(
    values: Any, q: float, confidence: float = 0.95, method: PercentileMethod = "loadgen"
) -> tuple[float, float]:
    """Exact percentile-bootstrap CI of the ``q``-quantile (order-statistic methods;
    ``linear`` uses the nearest order statistic ``floor(q*(n-1))`` for the interval)."""
    a = np.sort(_as_1d(values).astype(float))
    if a.size == 0:
        raise ValueError("confidence interval of an empty sample is undefined")
    _check_confidence(confidence)
    if method == "linear":
        k = int(math.floor(q * (a.size - 1)))
    else:
        k = percentile_index(a.size, q, method)
    cdf = order_statistic_bootstrap_cdf(a, k)
    alpha = (1.0 - confidence) / 2.0
    lo = int(np.searchsorted(cdf, alpha, side="left"))
    hi = int(np.searchsorted(cdf, 1.0 - alpha, side="left"))
    n = a.size
    return float(a[min(lo, n - 1)]), float(a[min(hi, n - 1)])


def _check_confidence(confidence: float) -> None:
    if not (0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def bootstrap_ci(
    values: Any,
    statistic: Statistic,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap confidence interval ``(low, high)`` of ``statistic`` over ``values``.

    * Quantile statistics (``"median"``, ``"p99"``, float ``q``, :class:`QuantileStat`):
      exact percentile bootstrap of the order statistic (see module doc); ``n_resamples``
      and ``seed`` are not needed and the result is deterministic. BCa is not used for
      quantiles because it is unstable for them.
    * Anything else: :func:`scipy.stats.bootstrap` with ``n_resamples`` resamples and a
      seeded generator; BCa up to ``BCA_MAX_N`` samples, the percentile method above that.

    A sample of one value (or of identical values) gives ``(v, v)``.
    """
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy.stats import bootstrap

    a = _as_1d(values).astype(float)
    _check_confidence(confidence)
    if a.size == 0:
        raise ValueError("confidence interval of an empty sample is undefined")
    fn = resolve_statistic(statistic)
    if isinstance(fn, QuantileStat):
        return quantile_ci(a, fn.q, confidence, fn.method)
    if a.size == 1 or np.all(a == a[0]):
        v = float(np.asarray(fn(a, axis=-1)))
        return v, v
    method = "BCa" if a.size <= BCA_MAX_N else "percentile"
    res = bootstrap(
        (a,),
        fn,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method=method,
        vectorized=True,
        random_state=np.random.default_rng(seed),
        batch=max(1, _BOOT_BATCH_ELEMENTS // a.size),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # BCa degenerate: fall back
        res = bootstrap(
            (a,),
            fn,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method="percentile",
            vectorized=True,
            random_state=np.random.default_rng(seed),
            batch=max(1, _BOOT_BATCH_ELEMENTS // a.size),
        )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return lo, hi


# --------------------------------------------------------------------------- early stopping


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


# --------------------------------------------------------------------------- steady state


@dataclass(frozen=True)
class SteadyStateResult:
    """Per-window values and whether max/min stays within ``1 + tolerance``.

    ``window_medians``: median of ``values`` per window (empty when no values were given);
    ``window_throughput_per_s``: events (or weights) per second per window (only when
    timestamps were given). ``stable`` requires every checked series to pass.
    """

    stable: bool
    n_windows: int
    tolerance: float
    ratio: float
    window_medians: tuple[float, ...] = ()
    window_throughput_per_s: tuple[float, ...] = ()
    median_ratio: float = math.nan
    throughput_ratio: float = math.nan
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _ratio(x: np.ndarray) -> float:
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo <= 0:
        return math.inf if hi > 0 else 1.0
    return hi / lo


def steady_state(
    values: Any = None,
    n_windows: int = 3,
    tolerance: float = 0.10,
    *,
    timestamps_ns: Any = None,
    weights: Any = None,
) -> SteadyStateResult:
    """Is the measurement stable over its last ``n_windows`` windows (perf_analyzer's rule)?

    * ``values`` only: a series in time order (latencies, or per-window throughputs) split
      into ``n_windows`` contiguous windows of equal count; the median of each window must
      satisfy ``max/min <= 1 + tolerance``.
    * ``timestamps_ns`` (e.g. ``completed_ns``): windows are equal time spans between the
      first and last timestamp; the throughput per window (count, or sum of ``weights`` such
      as batch sizes, per second) must be within tolerance, and so must the per-window median
      of ``values`` when given (same length as the timestamps).
    """
    if n_windows < 2:
        raise ValueError(f"n_windows must be >= 2, got {n_windows}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    limit = 1.0 + tolerance
    v = None if values is None else _as_1d(values).astype(float)
    if timestamps_ns is None:
        if v is None:
            raise ValueError("steady_state needs values, timestamps_ns, or both")
        if v.size < n_windows:
            return SteadyStateResult(
                False, n_windows, tolerance, math.nan, reason=f"{v.size} values < {n_windows} windows"
            )
        med = np.array([np.median(w) for w in np.array_split(v, n_windows)])
        r = _ratio(med)
        return SteadyStateResult(r <= limit, n_windows, tolerance, r, tuple(map(float, med)), median_ratio=r)
    ts = _as_1d(timestamps_ns, "timestamps_ns")
    if v is not None and v.size != ts.size:
        raise ValueError(f"values ({v.size}) and timestamps_ns ({ts.size}) differ in length")
    w = np.ones(ts.size) if weights is None else _as_1d(weights, "weights").astype(float)
    if w.size != ts.size:
        raise ValueError(f"weights ({w.size}) and timestamps_ns ({ts.size}) differ in length")
    if ts.size < 2 * n_windows or int(ts.max()) <= int(ts.min()):
        return SteadyStateResult(
            False, n_windows, tolerance, math.nan, reason=f"{ts.size} timestamps are too few for {n_windows} windows"
        )
    t0, t1 = int(ts.min()), int(ts.max())
    edges = np.linspace(t0, t1, n_windows + 1)
    idx = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, n_windows - 1)
    width_s = (t1 - t0) / n_windows / 1e9
    thr = np.bincount(idx, weights=w, minlength=n_windows) / width_s
    r_thr = _ratio(thr)
    meds: tuple[float, ...] = ()
    r_med = math.nan
    stable = r_thr <= limit
    if v is not None:
        m = []
        for k in range(n_windows):
            sel = v[idx == k]
            m.append(float(np.median(sel)) if sel.size else math.nan)
        med = np.array(m)
        r_med = _ratio(med) if np.all(np.isfinite(med)) else math.inf
        meds = tuple(m)
        stable = stable and r_med <= limit
    r = max(r_thr, r_med) if v is not None else r_thr
    return SteadyStateResult(
        bool(stable), n_windows, tolerance, r, meds, tuple(map(float, thr)), median_ratio=r_med, throughput_ratio=r_thr
    )


# --------------------------------------------------------------------------- summaries


def summarize_latencies_ns(
    lat_ns: Any,
    headline_q: float = 0.99,
    qs: Sequence[float] = DEFAULT_QS,
    confidence: float = 0.95,
    method: PercentileMethod = "loadgen",
) -> dict[str, Any]:
    """Summary of latencies given in integer nanoseconds, reported in milliseconds.

    ``lat_ns`` may be a float array holding ``+inf`` for queries not completed by the end of
    the window: they count in the percentiles (a percentile that lands on one is ``inf``)
    and in ``count``, not in ``mean``/``min``/``max``/``std``.

    Keys: ``p50`` .. ``p99.9`` (and the headline percentile if not among them), ``mean``,
    ``min``, ``max``, ``std`` (sample, ddof=1; 0 for one value) in ms; ``count`` (all
    queries), ``incomplete`` (the ``+inf`` ones); ``headline`` (its key); ``ci`` mapping
    ``"p50"`` and the headline key to ``(low, high)`` in ms; ``confidence``; ``method``
    (percentile definition) and ``ci_method``. An empty input gives ``{"count": 0, ...}``
    with no values.
    """
    a = _as_1d(lat_ns, "lat_ns")
    hkey = percentile_key(headline_q)
    ms = a.astype(float) / NS_PER_MS
    if np.isnan(ms).any() or np.isneginf(ms).any():
        raise ValueError("lat_ns: NaN or -inf is not a latency (use +inf for a query that never completed)")
    finite = ms[np.isfinite(ms)]
    base: dict[str, Any] = {
        "count": int(a.size),
        "incomplete": int(a.size - finite.size),
        "headline": hkey,
        "confidence": confidence,
        "method": _method_doc(method),
        "ci_method": "exact percentile bootstrap of the order statistic",
    }
    if a.size == 0:
        base["ci"] = {}
        return base
    all_qs = list(qs) + ([headline_q] if hkey not in {percentile_key(q) for q in qs} else [])
    base.update(percentiles(ms, all_qs, method))
    if finite.size:
        base["mean"] = float(np.mean(finite))
        base["min"] = float(np.min(finite))
        base["max"] = float(np.max(finite))
        base["std"] = float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0
    base["ci"] = {
        "p50": quantile_ci(ms, 0.5, confidence, method),
        hkey: quantile_ci(ms, headline_q, confidence, method),
    }
    return base


def _method_doc(method: str) -> str:
    if method == "loadgen":
        return PERCENTILE_METHOD_DOC
    if method == "nearest-rank-perf-analyzer":
        return "nearest-rank-perf-analyzer: sorted[round(q*(n-1))], as Triton perf_analyzer"
    return "linear: numpy linear interpolation between order statistics"
