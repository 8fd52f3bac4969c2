"""Properties of harness.core.stats: percentiles, bootstrap CIs, early stopping, steady state."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.core import early_stopping, stats, steady_state

METHODS = ["loadgen", "nearest-rank-perf-analyzer", "linear"]

latency_arrays = arrays(np.int64, st.integers(1, 300), elements=st.integers(0, 10**10))
qs = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(latency_arrays, qs, qs, st.sampled_from(METHODS))
def test_percentile_monotone_in_q(values: np.ndarray, q1: float, q2: float, method: str) -> None:
    lo, hi = sorted((q1, q2))
    assert stats.percentile(values, lo, method) <= stats.percentile(values, hi, method)


@settings(max_examples=60, deadline=None)
@given(latency_arrays, qs, st.sampled_from(METHODS))
def test_percentile_within_min_max(values: np.ndarray, q: float, method: str) -> None:
    v = stats.percentile(values, q, method)
    assert values.min() <= v <= values.max()


@settings(max_examples=60, deadline=None)
@given(latency_arrays, qs, st.sampled_from(METHODS), st.randoms(use_true_random=False))
def test_percentile_permutation_invariant(values: np.ndarray, q: float, method: str, rnd) -> None:
    perm = list(values)
    rnd.shuffle(perm)
    assert stats.percentile(np.array(perm), q, method) == stats.percentile(values, q, method)


@settings(max_examples=60, deadline=None)
@given(latency_arrays, qs)
def test_loadgen_method_matches_formula(values: np.ndarray, q: float) -> None:
    s = np.sort(values)
    idx = min(int(math.floor(len(s) * q)), len(s) - 1)
    assert stats.percentile(values, q, "loadgen") == float(s[idx])


@settings(max_examples=60, deadline=None)
@given(latency_arrays, qs)
def test_perf_analyzer_method_matches_formula(values: np.ndarray, q: float) -> None:
    s = np.sort(values)
    idx = int(math.floor(q * (len(s) - 1) + 0.5))
    assert stats.percentile(values, q, "nearest-rank-perf-analyzer") == float(s[idx])


def test_linear_is_numpy_and_methods_differ() -> None:
    x = np.arange(10)
    assert stats.percentile(x, 0.95, "linear") == pytest.approx(8.55)
    assert stats.percentile(x, 0.95, "loadgen") == 9.0  # floor(9.5) = 9
    assert stats.percentile(x, 0.95, "nearest-rank-perf-analyzer") == 9.0  # round(8.55)
    assert stats.percentile(x, 0.5, "loadgen") == 5.0
    assert stats.percentile(x, 0.5, "nearest-rank-perf-analyzer") == 5.0  # round-half-up of 4.5


def test_percentiles_keys_and_errors() -> None:
    p = stats.percentiles(np.arange(1000))
    assert list(p) == ["p50", "p90", "p95", "p99", "p99.9"]
    assert p["p99.9"] == 999.0
    with pytest.raises(ValueError, match="empty"):
        stats.percentile(np.array([]), 0.5)
    with pytest.raises(ValueError, match="allowed"):
        stats.percentile(np.arange(3), 0.5, "bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.percentile(np.arange(3), 1.5)


# ------------------------------------------------------------------ early stopping


@pytest.mark.parametrize("p,expected", [(0.90, 64), (0.99, 662), (0.999, 6636)])
def test_early_stopping_min_queries_matches_mlperf(p: float, expected: int) -> None:
    assert early_stopping.early_stopping_min_queries(p, 0.99) == expected


@settings(max_examples=30, deadline=None)
@given(st.floats(0.5, 0.995), st.floats(0.5, 0.995))
def test_early_stopping_min_queries_monotone_in_p(p1: float, p2: float) -> None:
    lo, hi = sorted((p1, p2))
    assert early_stopping.early_stopping_min_queries(lo) <= early_stopping.early_stopping_min_queries(hi)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.5, 0.98), st.floats(0.5, 0.999), st.floats(0.5, 0.999))
def test_early_stopping_min_queries_monotone_in_confidence(p: float, c1: float, c2: float) -> None:
    lo, hi = sorted((c1, c2))
    assert early_stopping.early_stopping_min_queries(p, lo) <= early_stopping.early_stopping_min_queries(p, hi)


def test_early_stopping_invalid_below_minimum() -> None:
    r = early_stopping.early_stopping_percentile(np.arange(63), 0.9)
    assert not r.valid and r.min_queries == 64 and math.isnan(r.conservative_value)
    r = early_stopping.early_stopping_percentile(np.arange(64), 0.9)
    assert r.valid and r.t_over == 1 and r.conservative_value == 63.0


@settings(max_examples=40, deadline=None)
@given(arrays(np.int64, st.integers(64, 2000), elements=st.integers(0, 10**9)), st.sampled_from([0.9, 0.95, 0.99]))
def test_early_stopping_is_conservative_and_satisfies_criterion(values: np.ndarray, p: float) -> None:
    from scipy.special import betainc

    r = early_stopping.early_stopping_percentile(values, p)
    if not r.valid:
        assert len(values) < r.min_queries
        return
    assert r.conservative_value >= stats.percentile(values, p)
    n, t = len(values), r.t_over
    assert betainc(n - t, t + 1, p) <= 0.01
    # the next smaller order statistic would not be supported
    assert betainc(n - t - 1, t + 2, p) > 0.01
    assert r.conservative_value == float(np.sort(values)[n - t])


# ------------------------------------------------------------------ bootstrap


@settings(max_examples=25, deadline=None)
@given(
    st.integers(30, 400),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["median", "p90", "p99", "mean"]),
)
def test_bootstrap_ci_contains_estimate(n: int, seed: int, statistic: str) -> None:
    x = np.random.default_rng(seed).lognormal(0.0, 0.5, n)
    lo, hi = stats.bootstrap_ci(x, statistic, n_resamples=300, seed=1)
    est = float(np.asarray(stats.resolve_statistic(statistic)(x)))
    assert lo <= est <= hi
    assert lo < hi


def test_bootstrap_ci_is_seed_deterministic() -> None:
    x = np.random.default_rng(3).lognormal(0.0, 0.5, 500)
    a = stats.bootstrap_ci(x, "mean", n_resamples=400, seed=7)
    b = stats.bootstrap_ci(x, "mean", n_resamples=400, seed=7)
    c = stats.bootstrap_ci(x, "mean", n_resamples=400, seed=8)
    assert a == b and a != c
    assert stats.bootstrap_ci(x, "p99") == stats.bootstrap_ci(x, "p99", seed=99)


def test_exact_quantile_bootstrap_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    x = np.sort(rng.lognormal(0.0, 0.4, 400))
    k = stats.percentile_index(x.size, 0.9)
    res = x[np.sort(rng.integers(0, x.size, (20000, x.size)), axis=1)[:, k]]
    lo, hi = stats.quantile_ci(x, 0.9, 0.95)
    mc_lo, mc_hi = np.quantile(res, [0.025, 0.975])
    # within two order statistics of the Monte Carlo percentile interval
    idx = np.searchsorted(x, [lo, hi, mc_lo, mc_hi])
    assert abs(idx[0] - idx[2]) <= 2 and abs(idx[1] - idx[3]) <= 2


def test_bootstrap_ci_constant_and_unknown_statistic() -> None:
    assert stats.bootstrap_ci(np.full(50, 3.0), "mean") == (3.0, 3.0)
    with pytest.raises(ValueError, match="unknown statistic"):
        stats.bootstrap_ci(np.arange(5.0), "p1000")


# ------------------------------------------------------------------ steady state


def test_steady_state_detects_30_percent_drift() -> None:
    x = np.linspace(1.0, 1.3, 300)
    r = steady_state.steady_state(x)
    assert not r.stable and r.ratio > 1.1


@settings(max_examples=30, deadline=None)
@given(st.floats(1e-3, 1e9), st.integers(3, 500))
def test_steady_state_accepts_constant(v: float, n: int) -> None:
    assert steady_state.steady_state(np.full(n, v)).stable


def test_steady_state_timestamps_throughput_drift() -> None:
    # completions whose gaps grow 30 %: throughput falls
    gaps = np.linspace(1_000_000, 1_300_000, 600)
    ts = np.cumsum(gaps).astype(np.int64)
    r = steady_state.steady_state(timestamps_ns=ts)
    assert not r.stable and r.throughput_ratio > 1.1
    ts_const = np.arange(600, dtype=np.int64) * 1_000_000
    r2 = steady_state.steady_state(np.full(600, 5.0), timestamps_ns=ts_const)
    assert r2.stable and len(r2.window_throughput_per_s) == 3


# ------------------------------------------------------------------ summary


def test_summarize_latencies_ns() -> None:
    lat = np.arange(1, 1001, dtype=np.int64) * 1_000_000  # 1..1000 ms
    s = stats.summarize_latencies_ns(lat, headline_q=0.9)
    assert s["count"] == 1000
    assert s["p50"] == 501.0 and s["p90"] == 901.0 and s["p99.9"] == 1000.0
    assert s["min"] == 1.0 and s["max"] == 1000.0 and s["mean"] == pytest.approx(500.5)
    lo, hi = s["ci"]["p90"]
    assert lo <= 901.0 <= hi
    assert "loadgen" in s["method"]
    assert stats.summarize_latencies_ns(np.array([], dtype=np.int64))["count"] == 0


# ------------------------------------------------------------------ incomplete queries count as +inf


def test_incomplete_queries_count_as_inf_in_percentiles() -> None:
    lat = np.concatenate([np.arange(1, 991, dtype=float) * 1e6, np.full(10, np.inf)])  # 1 % never completed
    s = stats.summarize_latencies_ns(lat, headline_q=0.99)
    assert s["count"] == 1000 and s["incomplete"] == 10
    assert s["p99"] == math.inf and s["p99.9"] == math.inf  # lands on an incomplete query
    assert s["p90"] == 901.0  # the completed ones still order as before
    assert s["max"] == 990.0 and s["mean"] == pytest.approx(495.5)  # completed only
    assert s["ci"]["p99"][1] == math.inf
    # dropping them instead would report a finite, optimistic p99
    assert stats.summarize_latencies_ns(lat[:990], headline_q=0.99)["p99"] < math.inf
    with pytest.raises(ValueError, match="NaN"):
        stats.summarize_latencies_ns(np.array([1.0, np.nan]))


def test_early_stopping_counts_incomplete_queries() -> None:
    done = np.arange(1, 1001, dtype=float)
    r = early_stopping.early_stopping_percentile(np.concatenate([done, np.full(3, np.inf)]), 0.9)
    assert r.valid and r.n == 1003 and r.n_incomplete == 3 and math.isfinite(r.conservative_value)
    # the estimate sits higher than without the incomplete queries: they are over every bound
    assert r.conservative_value > early_stopping.early_stopping_percentile(done, 0.9).conservative_value
    many = early_stopping.early_stopping_percentile(np.concatenate([done, np.full(200, np.inf)]), 0.9)
    assert not many.valid and many.conservative_value == math.inf and "incomplete" in many.reason


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 3000), elements=st.floats(0, 100, allow_nan=False)),
    st.integers(0, 50),
    st.floats(1.0, 99.0),
    st.sampled_from([0.9, 0.99]),
)
def test_over_latency_rule_matches_the_criterion(done: np.ndarray, n_inf: int, bound: float, p: float) -> None:
    from scipy.special import betainc

    lat = np.concatenate([done, np.full(n_inf, np.inf)])
    r = early_stopping.early_stopping_over_latency(lat, bound, p, 0.99)
    over = int(np.sum(done > bound)) + n_inf
    assert r.over == over and r.incomplete == n_inf and r.n == lat.size
    h = lat.size - over
    assert r.passed == (h > 0 and betainc(h, over + 1, p) <= 0.01)


def test_over_latency_rule_examples() -> None:
    # none over the bound: 0.99^h <= 0.01 needs h >= 459 (LoadGen: queries_issued >= h + t)
    assert early_stopping.early_stopping_over_latency(np.full(459, 1.0), 2.0, 0.99).passed
    assert not early_stopping.early_stopping_over_latency(np.full(458, 1.0), 2.0, 0.99).passed
    # one never-completed query counts as over: 661 within the bound are then needed
    one_inf = np.concatenate([np.full(660, 1.0), [np.inf]])
    r = early_stopping.early_stopping_over_latency(one_inf, 2.0, 0.99)
    assert not r.passed and r.over == 1 and r.incomplete == 1 and r.min_passing == 661
    assert early_stopping.early_stopping_over_latency(np.concatenate([np.full(661, 1.0), [np.inf]]), 2.0, 0.99).passed
    # latency exactly at the bound is within it (LoadGen counts latency > bound)
    assert early_stopping.early_stopping_over_latency(np.full(459, 2.0), 2.0, 0.99).over == 0
