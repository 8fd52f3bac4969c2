"""Statistics of serially correlated timing series, by batch means.

The latencies of an open-loop run are autocorrelated (a queue carries its backlog from one
query to the next), and so are the completions of a closed loop. Treating them as independent
understates every uncertainty: a bootstrap that resamples single queries covered the true p99
of a simulated queue at rho = 0.6 in about half the runs, for a nominal 95 %. Everything here
cuts the series, in time order, into contiguous *batches* long enough that their means are
nearly independent, and treats the batch means as an independent sample.

* :func:`integrated_autocorr_time` -- Sokal's windowed estimate of the integrated
  autocorrelation time ``tau`` (in samples); ``n / tau`` is the effective sample size.
* :func:`batch_count` -- number of batches for a series: batch length at least
  ``BATCH_TAUS * tau`` and ``n / MAX_BATCHES``, chosen from the data.
* :func:`quantile_ci_batch_means` -- confidence interval of a quantile of a series in time
  order (Woodruff's interval with the batch-means variance of the empirical CDF).
* :func:`trend_test` -- does a series (lateness in schedule order) grow over time? Least
  squares on batch means, a three-way verdict.
* :func:`closed_loop_stability` -- last-to-first throughput ratio of a closed loop with a
  batch-means interval, a three-way verdict.
* :func:`rate_shortfall` -- achieved against offered rate with a Poisson tolerance.

Verdicts are ``"stable"`` (the interval lies inside the tolerance band), ``"unstable"`` (it
lies wholly beyond it: a change larger than the tolerance is shown) or ``"inconclusive"``
(neither, or too little data). Pure functions on NumPy arrays; no I/O.

Size: over 400 lines because its checks share one batching rule and one verdict rule; apart,
they would drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from harness.core.stats import PercentileMethod, percentile_index

Verdict = Literal["stable", "unstable", "inconclusive"]

#: batches are at least this many integrated autocorrelation times long
BATCH_TAUS = 10.0
#: at most this many batches (more gives little and shortens each)
MAX_BATCHES = 30
#: fewer batches than this give no interval (the t quantile would be too wide to help)
MIN_BATCHES = 5
#: Sokal's window constant: sum the autocorrelation up to the first lag M >= c * tau(M)
SOKAL_C = 5.0


def _t_quantile(p: float, df: float) -> float:
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy.stats import t as student_t

    return float(student_t.ppf(p, df))


def integrated_autocorr_time(x: Any) -> float:
    """Integrated autocorrelation time ``tau = 1 + 2 * sum_k rho_k`` of ``x`` (in samples).

    Autocorrelation by FFT; the sum runs up to Sokal's automatic window (the first lag ``M``
    with ``M >= 5 * tau(M)``). At least 1; 1 for a constant or a series of fewer than 4 values.
    """
    a = np.asarray(x, dtype=float)
    n = int(a.size)
    if n < 4:
        return 1.0
    a = a - a.mean()
    var = float(np.dot(a, a))
    if var <= 0.0 or not math.isfinite(var):
        return 1.0
    f = np.fft.rfft(a, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n] / var
    taus = 2.0 * np.cumsum(acf) - 1.0
    lags = np.arange(n)
    ok = np.nonzero(lags >= SOKAL_C * taus)[0]
    tau = float(taus[ok[0]]) if ok.size else float(taus[-1])
    return max(tau, 1.0)


def batch_count(n: int, tau: float, *, max_batches: int = MAX_BATCHES) -> int:
    """Batches for ``n`` values with autocorrelation time ``tau``: ``n // m`` with batch length
    ``m = max(ceil(BATCH_TAUS * tau), ceil(n / max_batches))``. May be below ``MIN_BATCHES``
    (then callers report no interval, or an inconclusive verdict)."""
    if n <= 0:
        return 0
    m = max(math.ceil(BATCH_TAUS * max(tau, 1.0)), math.ceil(n / max_batches), 1)
    return n // m


def _batch_means(x: np.ndarray, b: int) -> np.ndarray:
    """Means of ``b`` contiguous batches of equal length (the first ``n % b`` values are left
    out, so that the end of the series, the part nearest the verdict, is always used)."""
    m = x.size // b
    return np.asarray(x[x.size - m * b :].reshape(b, m).mean(axis=1), dtype=float)


# --------------------------------------------------------------------------- quantile CI


@dataclass(frozen=True)
class QuantileCI:
    """Interval of a quantile of a series in time order.

    ``low``/``high`` in the unit of the input (``inf`` when the bound lands on a value that is
    ``+inf``, e.g. a query that never completed); ``batches`` used (0 when the interval fell
    back to the independent-sample binomial one), ``tau`` the autocorrelation time of the
    indicator ``x <= estimate``, ``method`` a one-line statement.
    """

    estimate: float
    low: float
    high: float
    batches: int
    tau: float
    method: str


QUANTILE_CI_METHOD = (
    "batch means in schedule order: Woodruff interval with the variance of the empirical CDF at the estimate "
    "taken from batch means (batch length >= 10 x the indicator's autocorrelation time, <= 30 batches, "
    "t quantile), never narrower than the independent-sample binomial interval"
)


def quantile_ci_batch_means(
    values: Any, q: float, confidence: float = 0.95, method: PercentileMethod = "loadgen"
) -> QuantileCI:
    """Confidence interval of the ``q``-quantile of ``values`` given **in time order**.

    The estimate is the order statistic of ``method``. The interval inverts the empirical CDF
    (Woodruff): ``sorted[floor(n * (q - t * se))] .. sorted[ceil(n * (q + t * se))]`` where
    ``se`` is the standard error of the fraction of values ``<= estimate``, estimated from
    batch means of that indicator (see :func:`batch_count`) with a t quantile of ``b - 1``
    degrees of freedom, and never below the binomial ``sqrt(q (1 - q) / n)``. With fewer than
    ``MIN_BATCHES`` batches the binomial standard error is inflated by ``sqrt(tau)`` instead.
    ``+inf`` values (queries never completed) are allowed and sort last.
    """
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"values: expected a 1-D array, got shape {a.shape}")
    n = int(a.size)
    if n == 0:
        raise ValueError("confidence interval of an empty sample is undefined")
    if not (0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if np.isnan(a).any():
        raise ValueError("values: NaN is not a latency (use +inf for a query that never completed)")
    s = np.sort(a)
    k = percentile_index(n, q, method) if method != "linear" else int(math.floor(q * (n - 1)))
    est = float(s[k])
    ind = (a <= est).astype(float)
    tau = integrated_autocorr_time(ind)
    b = batch_count(n, tau)
    se_iid = math.sqrt(max(q * (1.0 - q), 1.0 / n) / n)
    if b >= MIN_BATCHES:
        bm = _batch_means(ind, b)
        se = max(float(np.std(bm, ddof=1)) / math.sqrt(b), se_iid)
        tq = _t_quantile(0.5 + confidence / 2.0, b - 1)
    else:
        se = se_iid * math.sqrt(tau)
        tq = _t_quantile(0.5 + confidence / 2.0, max(n / tau - 1.0, 1.0))
        b = 0
    lo_i = int(math.floor(n * (q - tq * se)))
    hi_i = int(math.ceil(n * (q + tq * se)))
    lo_i = min(max(lo_i, 0), k)
    hi_i = max(min(hi_i, n - 1), k)
    return QuantileCI(est, float(s[lo_i]), float(s[hi_i]), b, tau, QUANTILE_CI_METHOD)


# --------------------------------------------------------------------------- trend


@dataclass(frozen=True)
class TrendResult:
    """Outcome of :func:`trend_test`.

    ``rise`` is the fitted change of ``y`` from the first to the last time point (unit of
    ``y``), ``rise_low``/``rise_high`` its one-sided ``1 - alpha`` bounds, ``relative_*`` the
    same divided by the mean of ``y``; ``p_value`` is one-sided (growth); ``batches`` and
    ``tau`` describe the batching. ``reason`` explains an inconclusive verdict.
    """

    verdict: Verdict
    rise: float
    rise_low: float
    rise_high: float
    relative_rise: float
    relative_low: float
    relative_high: float
    p_value: float
    batches: int
    tau: float
    tolerance: float
    alpha: float
    reason: str = ""


TREND_METHOD = (
    "least squares of batch means of lateness on batch mean scheduled time (batch length >= 10 x the "
    "autocorrelation time of the detrended series, <= 30 batches, t with b - 2 df); unstable when the "
    "growth is significant (one-sided p < alpha) and the fitted rise over the run is at least the tolerance x "
    "mean lateness, stable when the upper bound of the rise stays below that, else inconclusive"
)


def trend_test(t: Any, y: Any, *, tolerance: float = 0.10, alpha: float = 0.01) -> TrendResult:
    """Does ``y`` (e.g. lateness = completed - scheduled) grow with ``t`` (scheduled time)?

    Values are taken in the order of ``t``. The series is cut into ``b`` batches (see
    :func:`batch_count`, with ``tau`` from the residuals of a straight-line fit so that a
    trend does not pass for autocorrelation); the batch means of ``y`` are regressed on those
    of ``t``. ``rise = slope * (t_last - t_first)``. Verdict: ``unstable`` when the growth is
    significant (one-sided ``p < alpha``) and material (``rise >= tolerance * mean(y)``; a
    significant but negligible drift does not count), ``stable`` when the one-sided
    ``1 - alpha`` upper bound of the rise is below ``tolerance * mean(y)`` (a material growth
    is ruled out), ``inconclusive`` otherwise or with fewer than ``MIN_BATCHES`` batches.
    ``y`` must be finite.
    """
    tt = np.asarray(t, dtype=float)
    yy = np.asarray(y, dtype=float)
    if tt.shape != yy.shape or tt.ndim != 1:
        raise ValueError(f"t and y must be 1-D of equal length, got {tt.shape} and {yy.shape}")
    if not np.all(np.isfinite(yy)) or not np.all(np.isfinite(tt)):
        raise ValueError("trend_test: t and y must be finite")
    if tolerance < 0 or not (0.0 < alpha < 0.5):
        raise ValueError(f"tolerance must be >= 0 and alpha in (0, 0.5), got {tolerance!r}, {alpha!r}")
    order = np.argsort(tt, kind="stable")
    tt, yy = tt[order], yy[order]
    n = int(tt.size)
    nan = math.nan

    def inconclusive(reason: str, b: int = 0, tau: float = nan) -> TrendResult:
        return TrendResult("inconclusive", nan, nan, nan, nan, nan, nan, nan, b, tau, tolerance, alpha, reason)

    if n < 2 * MIN_BATCHES or np.ptp(tt) <= 0:
        return inconclusive(f"{n} values over a span of {np.ptp(tt) if n else 0:g}: too few for a trend test")
    resid = yy - np.polyval(np.polyfit(tt - tt[0], yy, 1), tt - tt[0])
    tau = integrated_autocorr_time(resid)
    b = batch_count(n, tau)
    if b < MIN_BATCHES:
        return inconclusive(f"{b} batches of >= {BATCH_TAUS:g} x tau = {tau:.1f} values: need {MIN_BATCHES}", b, tau)
    tb, yb = _batch_means(tt, b), _batch_means(yy, b)
    tc = tb - tb.mean()
    sxx = float(np.dot(tc, tc))
    if sxx <= 0:
        return inconclusive("batch times do not vary", b, tau)
    slope = float(np.dot(tc, yb - yb.mean()) / sxx)
    res = yb - yb.mean() - slope * tc
    df = b - 2
    s2 = float(np.dot(res, res)) / df
    se = math.sqrt(s2 / sxx)
    span = float(tt[-1] - tt[0])
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy.stats import t as student_t

    p = float(student_t.sf(slope / se, df)) if se > 0 else (0.0 if slope > 0 else 1.0)
    tq = _t_quantile(1.0 - alpha, df)
    rise, lo, hi = slope * span, (slope - tq * se) * span, (slope + tq * se) * span
    mean = float(np.mean(yy))
    scale = abs(mean) if mean != 0 else 1.0
    limit = tolerance * scale
    verdict: Verdict = "unstable" if (p < alpha and rise >= limit) else ("stable" if hi < limit else "inconclusive")
    why = (
        ""
        if verdict != "inconclusive"
        else f"growth neither shown nor ruled out: rise {rise:.4g} (bounds {lo:.4g} .. {hi:.4g}, p = {p:.3g}) "
        f"against {limit:.4g}"
    )
    return TrendResult(verdict, rise, lo, hi, rise / scale, lo / scale, hi / scale, p, b, tau, tolerance, alpha, why)


# --------------------------------------------------------------------------- closed loop


#: closed-loop windows: each at least this long ...
MIN_WINDOW_S = 1.0
#: ... and holding at least this many completions
MIN_WINDOW_COMPLETIONS = 50
#: sub-batches per window for the batch-means variance of its rate
SUB_BATCHES = 10


@dataclass(frozen=True)
class StabilityResult:
    """Outcome of :func:`closed_loop_stability`.

    ``ratio`` = throughput of the last window / throughput of the first (1 = steady; below 1
    = slowing down), ``ratio_low``/``ratio_high`` its two-sided ``confidence`` interval,
    ``window_throughput`` the three windows' rates (weight units per second), ``window_s``
    their length, ``sub_batches`` per window, ``reason`` why the verdict is inconclusive.
    """

    verdict: Verdict
    ratio: float
    ratio_low: float
    ratio_high: float
    tolerance: float
    confidence: float
    window_s: float
    window_throughput: tuple[float, ...] = ()
    sub_batches: int = 0
    reason: str = ""

    @property
    def spread(self) -> float:
        """``max(ratio, 1 / ratio)``: how far apart the first and last windows are (>= 1)."""
        if not (self.ratio > 0 and math.isfinite(self.ratio)):
            return math.inf
        return max(self.ratio, 1.0 / self.ratio)


STABILITY_METHOD = (
    "throughput of the last third of the run / the first third (each >= 1 s and >= 50 completions); "
    "interval from 10 sub-batch rates per third (batch means, Welch t on the log ratio); stable when the "
    "interval lies within [1/(1+tol), 1+tol], unstable when it lies wholly outside, else inconclusive"
)


def closed_loop_stability(
    completed_ns: Any,
    weights: Any = None,
    *,
    start_ns: int | None = None,
    tolerance: float = 0.10,
    confidence: float = 0.95,
    min_window_s: float = MIN_WINDOW_S,
    min_window_completions: int = MIN_WINDOW_COMPLETIONS,
) -> StabilityResult:
    """Is a closed loop's throughput steady from its first third to its last?

    The span ``[start_ns, last completion]`` (``start_ns`` defaults to the first completion)
    is cut into three equal windows; each must last ``min_window_s`` and hold
    ``min_window_completions`` completions, otherwise the verdict is ``inconclusive`` (the
    caller extends the run). Each window is cut into ``m`` equal sub-spans (``SUB_BATCHES``,
    fewer when a window holds under ``5 * SUB_BATCHES`` completions) whose rates (sum of
    ``weights``, e.g. samples, per second) are its batch means; see
    :func:`stability_from_rates` for the interval and the verdict.
    """
    c = np.asarray(completed_ns, dtype=np.int64)
    w = np.ones(c.size) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != c.shape or c.ndim != 1:
        raise ValueError(f"completed_ns and weights must be 1-D of equal length, got {c.shape} and {w.shape}")
    if c.size < 2:
        nan = math.nan
        return StabilityResult(
            "inconclusive", nan, nan, nan, tolerance, confidence, 0.0, reason="fewer than 2 completions"
        )
    t0 = int(c.min()) if start_ns is None else int(start_ns)
    span = int(c.max()) - t0
    thirds = np.clip((c - t0) * 3 // max(span, 1), 0, 2)
    counts = np.bincount(thirds, minlength=3)
    m = max(2, min(SUB_BATCHES, int(counts.min()) // 5))
    sub = np.clip((c - t0) * (3 * m) // max(span, 1), 0, 3 * m - 1)
    rates = np.bincount(sub, weights=w, minlength=3 * m) / (span / 1e9 / (3 * m)) if span > 0 else np.zeros(3 * m)
    return stability_from_rates(
        rates,
        span / 3e9,
        [int(x) for x in counts],
        tolerance=tolerance,
        confidence=confidence,
        min_window_s=min_window_s,
        min_window_completions=min_window_completions,
    )


def stability_from_rates(
    sub_rates: Any,
    window_s: float,
    window_completions: Any,
    *,
    tolerance: float = 0.10,
    confidence: float = 0.95,
    min_window_s: float = MIN_WINDOW_S,
    min_window_completions: int = MIN_WINDOW_COMPLETIONS,
) -> StabilityResult:
    """The verdict of :func:`closed_loop_stability` from ``3 * m`` equal sub-window rates in
    time order (windows of ``window_s`` holding ``window_completions`` completions each).

    ``ratio = mean(last m rates) / mean(first m rates)``; the interval of ``log(ratio)`` is
    ``+- t * se`` with ``se^2 = var_last / (m * mean_last^2) + var_first / (m * mean_first^2)``
    and Welch's degrees of freedom. ``stable`` when the interval lies within
    ``[1 / (1 + tolerance), 1 + tolerance]``, ``unstable`` when it lies wholly outside,
    ``inconclusive`` otherwise or when a window is shorter than ``min_window_s`` or holds
    fewer than ``min_window_completions`` completions.
    """
    r = np.asarray(sub_rates, dtype=float)
    counts = [int(x) for x in np.asarray(window_completions).ravel()]
    if tolerance < 0 or not (0.0 < confidence < 1.0):
        raise ValueError(f"tolerance must be >= 0 and confidence in (0, 1), got {tolerance!r}, {confidence!r}")
    if r.ndim != 1 or r.size < 6 or r.size % 3 or len(counts) != 3:
        raise ValueError(f"need 3 * m >= 6 sub-window rates and 3 window counts, got {r.size} and {len(counts)}")
    nan = math.nan
    m = r.size // 3
    thr = tuple(float(x) for x in r.reshape(3, m).mean(axis=1))
    if window_s < min_window_s or min(counts) < min_window_completions:
        return StabilityResult(
            "inconclusive",
            nan,
            nan,
            nan,
            tolerance,
            confidence,
            window_s,
            thr,
            reason=f"windows of {window_s:.3g} s with {min(counts)} completions "
            f"(need >= {min_window_s:g} s and >= {min_window_completions})",
        )
    first, last = r[:m], r[2 * m :]
    mf, ml = float(first.mean()), float(last.mean())
    if mf <= 0 or ml <= 0:
        return StabilityResult(
            "inconclusive", nan, nan, nan, tolerance, confidence, window_s, thr, m, "a window is empty"
        )
    vf = float(first.var(ddof=1)) / (m * mf * mf)
    vl = float(last.var(ddof=1)) / (m * ml * ml)
    ratio = ml / mf
    se = math.sqrt(vf + vl)
    if se > 0:
        df = (vf + vl) ** 2 / ((vf * vf + vl * vl) / (m - 1))
        h = _t_quantile(0.5 + confidence / 2.0, df) * se
    else:
        h = 0.0
    lo, hi = ratio * math.exp(-h), ratio * math.exp(h)
    band_lo, band_hi = 1.0 / (1.0 + tolerance), 1.0 + tolerance
    if band_lo <= lo and hi <= band_hi:
        verdict: Verdict = "stable"
    elif hi < band_lo or lo > band_hi:
        verdict = "unstable"
    else:
        verdict = "inconclusive"
    why = "" if verdict != "inconclusive" else f"interval [{lo:.4g}, {hi:.4g}] straddles [{band_lo:.4g}, {band_hi:.4g}]"
    return StabilityResult(verdict, ratio, lo, hi, tolerance, confidence, window_s, thr, m, why)


# --------------------------------------------------------------------------- rate


@dataclass(frozen=True)
class RateCheck:
    """Achieved vs offered rate: ``expected = offered_per_s * window_s`` completions, the
    run falls short when ``completed < expected - z * sqrt(expected)`` (``allowed_shortfall``)."""

    ok: bool
    completed: int
    expected: float
    allowed_shortfall: float
    z: float


RATE_METHOD = (
    "completed >= offered x window - z sqrt(offered x window): the Poisson spread of the count at a one-sided "
    "level of 0.001 (z = 3.09)"
)


def rate_shortfall(completed: int, offered_per_s: float, window_s: float, *, level: float = 0.001) -> RateCheck:
    """Did a run complete about as many queries as were offered in its window?

    Under Poisson arrivals the count in ``window_s`` has mean and variance
    ``offered_per_s * window_s``; a shortfall beyond ``z(level)`` standard deviations
    (one-sided) means the system did not keep up. The tolerance depends on the count:
    about 3 % at 10 000 expected queries, 10 % at 1 000.
    """
    if offered_per_s <= 0 or not (window_s > 0) or not (0.0 < level < 0.5):
        raise ValueError(
            f"offered_per_s and window_s must be > 0 and level in (0, 0.5), got {offered_per_s!r}, "
            f"{window_s!r}, {level!r}"
        )
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy.stats import norm

    z = float(norm.isf(level))
    expected = offered_per_s * window_s
    allowed = z * math.sqrt(expected)
    return RateCheck(bool(completed >= expected - allowed), int(completed), expected, allowed, z)
