"""Statistics on raw timings: percentiles, their confidence intervals, latency summaries.

MLPerf early stopping is in :mod:`harness.core.early_stopping`; window-based steady state in
:mod:`harness.core.steady_state`; tests on series in time order in :mod:`harness.core.batch_means`.

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
they enter percentiles (and :mod:`harness.core.early_stopping`) as ``+inf`` latencies, so a tail percentile that
lands on one is reported as ``inf``, never as a finite number. Mean, min, max and std cover
the completed queries only and say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


# --------------------------------------------------------------------------- steady state


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
