"""Arrival schedules: seeded, pure, right mean rate; trace replay errors name file:line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.measure.load import arrivals

rates = st.floats(min_value=1.0, max_value=50_000.0, allow_nan=False)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
counts = st.integers(min_value=2, max_value=3000)


@settings(max_examples=40, deadline=None)
@given(
    rate=rates,
    n=counts,
    seed=seeds,
    kind=st.sampled_from(["poisson", "gamma", "constant"]),
    burst=st.floats(min_value=0.1, max_value=8.0),
)
def test_seeded_sorted_and_exact_rate(rate: float, n: int, seed: int, kind: str, burst: float) -> None:
    a = arrivals.schedule(kind, rate, count=n, seed=seed, burstiness=burst)
    b = arrivals.schedule(kind, rate, count=n, seed=seed, burstiness=burst)
    assert a.dtype == np.int64 and a.size == n
    np.testing.assert_array_equal(a, b)
    assert a[0] >= 0 and np.all(np.diff(a) >= 0)
    # exact_rate: all n arrivals fall in [0, n / rate): the offered rate is the target
    assert a[-1] <= n / rate * 1e9 + 1  # +1: offsets are rounded to whole ns
    if kind == "constant":
        assert a[0] == 0 and abs(a[-1] - (n - 1) / rate * 1e9) <= 1


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(min_value=10.0, max_value=10_000.0), seed=seeds)
def test_raw_poisson_mean_rate(rate: float, seed: int) -> None:
    n = 4000
    a = arrivals.poisson(rate, count=n, seed=seed, exact_rate=False)
    gaps = np.diff(a) / 1e9
    # mean of 3999 exponential gaps: relative sd = 1/sqrt(3999) ~ 1.6 %; 6 sd bound
    assert abs(gaps.mean() * rate - 1.0) < 0.1
    # Poisson: gap CV^2 ~ 1
    assert 0.8 < gaps.var() / gaps.mean() ** 2 < 1.25


@settings(max_examples=20, deadline=None)
@given(seed=seeds, burst=st.sampled_from([0.25, 4.0]))
def test_gamma_burstiness_is_cv2(seed: int, burst: float) -> None:
    a = arrivals.gamma(1000.0, burstiness=burst, count=6000, seed=seed, exact_rate=False)
    g = np.diff(a).astype(float)
    cv2 = g.var() / g.mean() ** 2
    assert 0.6 * burst < cv2 < 1.6 * burst


def test_different_seeds_differ_and_duration_sizes() -> None:
    a = arrivals.poisson(500.0, duration_s=2.0, seed=1)
    b = arrivals.poisson(500.0, duration_s=2.0, seed=2)
    assert a.size == b.size == 1000
    assert not np.array_equal(a, b)
    assert arrivals.poisson(500.0, duration_s=2.0, seed=1)[-1] < 2e9


def test_exact_rate_poisson_hits_target() -> None:
    a = arrivals.poisson(1000.0, count=10_000, seed=3)
    # n arrivals over n/rate seconds: the schedule's offered rate is the target
    assert abs((a.size / (a[-1] / 1e9)) / 1000.0 - 1) < 0.002


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rate_qps"):
        arrivals.poisson(0.0, count=3)
    with pytest.raises(ValueError, match="exactly one"):
        arrivals.poisson(1.0)
    with pytest.raises(ValueError, match="burstiness"):
        arrivals.gamma(1.0, burstiness=0.0, count=3)
    with pytest.raises(ValueError, match="allowed: poisson"):
        arrivals.schedule("weibull", 1.0, count=3)


def test_trace_replay_units_scaling_and_repeat(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("# comment\ntimestamp_ms,user\n100,a\n100.5,b\n\n102,c\n")
    np.testing.assert_array_equal(arrivals.load_trace(f), [0, 500_000, 2_000_000])
    scaled = arrivals.trace(f, rate_qps=2000.0)  # 2 gaps over 1 ms
    assert scaled[-1] == 1_000_000
    rep = arrivals.trace(f, count=7)
    assert rep.size == 7 and np.all(np.diff(rep) >= 0)
    plain = tmp_path / "p.csv"
    plain.write_text("0\n0.25\n1\n")
    np.testing.assert_array_equal(arrivals.load_trace(plain), [0, 250_000_000, 1_000_000_000])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("0\n0.5\nabc\n", ":3: timestamp 'abc' is not a number"),
        ("0\n2\n1\n", ":3: timestamp 1 is earlier"),
        ("time,x\n1,2\n", ":1: header"),
        ("timestamp_h\n1\n", "unknown unit 'h'"),
        ("0\n-1\n", ":2: timestamp '-1' must be finite"),
        ("# nothing\n", "no timestamps"),
    ],
)
def test_trace_errors_name_file_and_line(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(arrivals.TraceError) as e:
        arrivals.load_trace(f)
    assert str(f) in str(e.value) and needle in str(e.value)
