"""Statistics of correlated series (harness.core.batch_means): seeded, no timing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core import batch_means as bm
from harness.core import stats


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0] / math.sqrt(1 - phi * phi)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


def test_autocorrelation_time_of_iid_and_ar1() -> None:
    rng = np.random.default_rng(1)
    assert bm.integrated_autocorr_time(rng.normal(size=20_000)) == pytest.approx(1.0, abs=0.15)
    # AR(1): tau = (1 + phi) / (1 - phi) = 9 for phi = 0.8
    assert bm.integrated_autocorr_time(ar1(rng, 50_000, 0.8)) == pytest.approx(9.0, rel=0.2)
    assert bm.integrated_autocorr_time(np.full(100, 3.0)) == 1.0


def test_batch_count_follows_the_data() -> None:
    assert bm.batch_count(9_000, 1.0) == bm.MAX_BATCHES  # batches of 300
    assert bm.batch_count(10_000, 1.0) == 29  # batches of ceil(10000 / 30) = 334
    assert bm.batch_count(10_000, 100.0) == 10  # batches of 1000 = 10 tau
    assert bm.batch_count(100, 50.0) == 0


@settings(max_examples=40, deadline=None)
@given(st.integers(20, 3000), st.integers(0, 2**31 - 1), st.sampled_from([0.5, 0.9, 0.99]))
def test_quantile_ci_contains_the_estimate(n: int, seed: int, q: float) -> None:
    x = np.random.default_rng(seed).lognormal(0, 1, n)
    ci = bm.quantile_ci_batch_means(x, q)
    assert ci.estimate == stats.percentile(x, q)
    assert ci.low <= ci.estimate <= ci.high


def test_quantile_ci_is_wider_for_correlated_series_and_covers() -> None:
    rng = np.random.default_rng(5)
    iid = np.exp(rng.normal(size=5000))
    ci_iid = bm.quantile_ci_batch_means(iid, 0.99)
    lo, hi = stats.quantile_ci(iid, 0.99)
    assert ci_iid.high - ci_iid.low >= 0.7 * (hi - lo)  # about the exact bootstrap for independent values
    # a strongly correlated series with the same marginal: the interval widens, and covers the
    # true p99 (exp of the normal's 0.99 quantile) in most of 60 seeded runs
    true = math.exp(2.3263478740408408)
    covered = 0
    widths = []
    for r in range(60):
        x = np.exp(ar1(np.random.default_rng([9, r]), 5000, 0.9) * math.sqrt(1 - 0.81))
        ci = bm.quantile_ci_batch_means(x, 0.99)
        covered += ci.low <= true <= ci.high
        widths.append(ci.high - ci.low)
        assert ci.batches >= bm.MIN_BATCHES and ci.tau > 2
    assert covered >= 51  # >= 85 % at nominal 95 %
    assert np.median(widths) > 1.5 * (hi - lo)


def test_quantile_ci_with_incomplete_queries() -> None:
    # 0.5 % never completed: p99 is finite, its upper bound is not
    x = np.concatenate([np.arange(1.0, 996.0), np.full(5, np.inf)])
    ci = bm.quantile_ci_batch_means(x, 0.99)
    assert ci.estimate == 991.0 and ci.high == math.inf and ci.low <= 991.0
    # 2 % never completed: p99 and its whole interval land on them
    x = np.concatenate([np.arange(1.0, 981.0), np.full(20, np.inf)])
    ci = bm.quantile_ci_batch_means(x, 0.99)
    assert ci.estimate == ci.low == ci.high == math.inf
    with pytest.raises(ValueError, match="NaN"):
        bm.quantile_ci_batch_means(np.array([1.0, np.nan]), 0.5)


def test_trend_test_verdicts() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(20_000, dtype=float)
    flat = 10 + ar1(rng, 20_000, 0.7)
    r = bm.trend_test(t, flat)
    assert r.verdict == "stable" and r.batches >= bm.MIN_BATCHES
    grow = flat + np.linspace(0, 3, 20_000)  # +30 % of the mean over the run
    g = bm.trend_test(t, grow)
    assert g.verdict == "unstable" and g.p_value < 0.01 and g.relative_rise == pytest.approx(0.3, abs=0.08)
    # significant but below the 10 % tolerance: not unstable
    small = flat + np.linspace(0, 0.3, 20_000)
    s = bm.trend_test(t, small)
    assert s.p_value < 0.01 and s.verdict != "unstable"
    # a falling series is not a growing backlog
    assert bm.trend_test(t, flat - np.linspace(0, 3, 20_000)).verdict == "stable"
    few = bm.trend_test(t[:8], flat[:8])
    assert few.verdict == "inconclusive" and "too few" in few.reason
    with pytest.raises(ValueError, match="finite"):
        bm.trend_test([0.0, 1.0], [1.0, np.inf])


def _closed_loop(rng: np.random.Generator, seconds: float, mean_ns: float, drift: float = 0.0) -> np.ndarray:
    n = int(seconds * 1e9 / mean_ns * 1.5)
    s = rng.gamma(4.0, mean_ns / 4.0, n)
    s = s * (1 + drift * np.cumsum(s) / (seconds * 1e9))
    ends = np.cumsum(s)
    return ends[ends <= seconds * 1e9].astype(np.int64)


def test_closed_loop_stability_verdicts() -> None:
    rng = np.random.default_rng(11)
    steady = bm.closed_loop_stability(_closed_loop(rng, 4.0, 1e6), start_ns=0)
    assert steady.verdict == "stable" and steady.ratio == pytest.approx(1.0, abs=0.03)
    assert steady.ratio_low <= steady.ratio <= steady.ratio_high and len(steady.window_throughput) == 3
    slow = bm.closed_loop_stability(_closed_loop(rng, 4.0, 1e6, drift=0.5), start_ns=0)
    assert slow.verdict == "unstable" and slow.ratio_high < 1 / 1.1 and slow.spread > 1.1
    short = bm.closed_loop_stability(_closed_loop(rng, 2.0, 1e6), start_ns=0)
    assert short.verdict == "inconclusive" and "need >= 1 s" in short.reason
    # 1.5 s windows but only ~30 completions each (50 ms queries)
    sparse = bm.closed_loop_stability(_closed_loop(rng, 4.5, 50e6), start_ns=0)
    assert sparse.verdict == "inconclusive" and "50" in sparse.reason
    # batch weights: samples per query scale the rates, not the verdict
    e = _closed_loop(rng, 4.0, 1e6)
    w = bm.closed_loop_stability(e, np.full(e.size, 8), start_ns=0)
    assert w.window_throughput[0] == pytest.approx(8 * bm.closed_loop_stability(e, start_ns=0).window_throughput[0])


def test_closed_loop_stability_noisy_is_inconclusive() -> None:
    # rate alternates between fast and slow half-second phases: the windows' sub-batches vary a
    # lot, so a 5 % difference between first and last third can be neither shown nor ruled out
    rng = np.random.default_rng(2)
    parts, t = [], 0.0
    for k in range(8):
        mean = 1e6 if k % 2 == 0 else 3e6
        s = rng.gamma(4.0, mean / 4.0, 4000)
        e = t + np.cumsum(s)
        e = e[e <= t + 0.5e9]
        parts.append(e)
        t += 0.5e9
    r = bm.closed_loop_stability(np.concatenate(parts).astype(np.int64), start_ns=0)
    assert r.verdict == "inconclusive"
    assert r.ratio_low < 1 / 1.1 < r.ratio_high or r.ratio_low < 1.1 < r.ratio_high


def test_rate_shortfall_tolerance_depends_on_count() -> None:
    ok = bm.rate_shortfall(9700, 1000.0, 10.0)
    assert ok.ok and ok.expected == 10_000 and ok.allowed_shortfall == pytest.approx(3.09 * 100, rel=0.01)
    assert not bm.rate_shortfall(9600, 1000.0, 10.0).ok
    # the same 3 % shortfall is within the spread of 1000 queries
    assert bm.rate_shortfall(970, 100.0, 10.0).ok
    with pytest.raises(ValueError, match="window_s"):
        bm.rate_shortfall(1, 1.0, 0.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.1, 1000.0), st.floats(-1e3, 1e3))
def test_trend_verdict_is_invariant_to_units_and_time_origin(seed: int, scale: float, shift: float) -> None:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 10, 3000))
    y = 5 + ar1(rng, 3000, 0.5) + rng.uniform(0, 3) * t / 10
    a = bm.trend_test(t, y)
    b = bm.trend_test(t + shift, y * scale)
    assert a.verdict == b.verdict and a.batches == b.batches
    assert b.relative_rise == pytest.approx(a.relative_rise, rel=1e-6, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 64), st.floats(0.5, 2.0))
def test_stability_verdict_ignores_batch_weights_and_speed(seed: int, weight: int, speed: float) -> None:
    e = _closed_loop(np.random.default_rng(seed), 4.0, 1e6)
    a = bm.closed_loop_stability(e, start_ns=0)
    assert a.ratio_low <= a.ratio <= a.ratio_high
    # samples per query scale every rate alike: the same ratio, interval and verdict
    w = bm.closed_loop_stability(e, np.full(e.size, weight), start_ns=0)
    assert (w.verdict, w.ratio_low, w.ratio_high) == (
        a.verdict,
        pytest.approx(a.ratio_low),
        pytest.approx(a.ratio_high),
    )
    # a uniformly faster or slower clock leaves the ratio (up to rounding of the times)
    f = bm.closed_loop_stability((e * speed).astype(np.int64), start_ns=0, min_window_s=0.5)
    assert f.ratio == pytest.approx(a.ratio, rel=1e-3)
