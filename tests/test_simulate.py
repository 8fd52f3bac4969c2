"""Discrete-event serving simulation: queueing sanity, batcher limits, peak search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.measure.load.batching import DynamicBatcher
from harness.planning.simulate import ServiceCurve, max_qps_under_slo, simulate_online, suggest_batcher

MS = 1_000_000


def test_low_load_latency_is_service_time() -> None:
    curve = ServiceCurve(np.array([2 * MS]))
    s = simulate_online(curve, 5.0, DynamicBatcher(1, 0), n_queries=4000, seed=3)
    assert s.p50_ms == pytest.approx(2.0, rel=0.01)
    assert s.utilisation == pytest.approx(0.01, rel=0.1)


def test_md1_mean_wait_and_littles_law() -> None:
    # M/D/1 at rho = 0.5 with D = 1 ms: mean wait = rho D / (2 (1 - rho)) = 0.5 ms
    curve = ServiceCurve(np.array([1 * MS]))
    s = simulate_online(curve, 500.0, DynamicBatcher(1, 0), n_queries=60_000, seed=1)
    assert s.mean_ms == pytest.approx(1.5, rel=0.05)
    # Little: L = lambda W
    assert s.mean_in_system == pytest.approx(s.achieved_qps * s.mean_ms / 1e3, rel=0.05)
    assert s.utilisation == pytest.approx(0.5, rel=0.05)


@settings(max_examples=25, deadline=None)
@given(mb=st.integers(1, 16), delay_us=st.integers(0, 3000), qps=st.floats(50, 3000), seed=st.integers(0, 99))
def test_batcher_limits_respected(mb: int, delay_us: int, qps: float, seed: int) -> None:
    from harness.measure.load import arrivals
    from harness.measure.load.batching import simulate

    curve = ServiceCurve(np.array([MS // 2 + 100_000 * k for k in range(1, 17)]))
    policy = DynamicBatcher(mb, delay_us * 1000)
    arr = arrivals.poisson(qps, count=400, seed=seed)
    r = simulate(arr, curve, policy)
    assert r.batch_size.max() <= mb
    assert np.all(r.dispatch_ns >= arr)
    # a query is never held past its delay while an instance is idle: with one instance,
    # the hold beyond the delay is bounded by the busy time of the batch ahead of it
    assert np.all(r.dispatch_ns - arr <= delay_us * 1000 + 2 * curve(16) * 400)


def test_peak_qps_meets_slo_and_more_instances_help() -> None:
    curve = ServiceCurve(np.array([MS + 200_000 * k for k in range(1, 33)]))
    pol = suggest_batcher(curve, 10.0)
    assert 2 * curve(pol.max_batch_size) <= 10 * MS
    one = max_qps_under_slo(curve, 10.0, pol, n_queries=3000)
    assert one.summary is not None and one.summary.p99_ms <= 10.0
    assert 0 < one.qps <= curve.capacity_qps(pol.max_batch_size)
    two = max_qps_under_slo(curve, 10.0, pol, instances=2, n_queries=3000)
    assert two.qps > one.qps


def test_curve_from_points_interpolates_and_extrapolates() -> None:
    c = ServiceCurve.from_points([1, 4], [1 * MS, 4 * MS], 8)
    assert c(2) == 2 * MS and c(8) == 8 * MS
    with pytest.raises(ValueError):
        ServiceCurve(np.array([0]))


def test_measured_spread_is_drawn_and_lengthens_the_tail() -> None:
    rng = np.random.default_rng(5)
    # service 1 ms median with a 10 % chance of 3 ms: M/G/1 at rho ~ 0.5
    samples = np.where(rng.random(5000) < 0.1, 3 * MS, MS).astype(np.int64)
    spread = ServiceCurve.from_samples({1: samples}, 1)
    fixed = ServiceCurve(spread.service_ns)
    assert spread(1) == MS
    a = simulate_online(spread, 420.0, DynamicBatcher(1, 0), n_queries=40_000, seed=2)
    b = simulate_online(fixed, 420.0, DynamicBatcher(1, 0), n_queries=40_000, seed=2)
    assert a.p99_ms > 1.5 * b.p99_ms
    # mean service 1.2 ms: busy share ~ 0.42 * 1.2
    assert a.utilisation == pytest.approx(0.42 * 1.2, rel=0.05)
    # Pollaczek-Khinchine mean wait for M/G/1: lambda E[S^2] / (2 (1 - rho))
    lam, es, es2 = 0.420, 1.2, 0.9 * 1.0 + 0.1 * 9.0
    rho = lam * es
    assert a.mean_ms == pytest.approx(es + lam * es2 / (2 * (1 - rho)), rel=0.05)
    # same seed, same draws
    assert simulate_online(spread, 420.0, DynamicBatcher(1, 0), n_queries=5_000, seed=2) == simulate_online(
        spread, 420.0, DynamicBatcher(1, 0), n_queries=5_000, seed=2
    )


def test_from_samples_spread_follows_the_nearest_measured_batch_below() -> None:
    c = ServiceCurve.from_samples({1: [MS] * 20, 4: list(range(3 * MS, 5 * MS, MS // 10))}, 8)
    assert c.jitter is not None and c.jitter.shape == (8, 1001)
    assert np.all(c.jitter[0] == 1.0)  # batch 1: no spread
    assert np.array_equal(c.jitter[3], c.jitter[7])  # batches 4..8 take batch 4's spread
    assert c.jitter[3][0] < 1.0 < c.jitter[3][-1]
    assert c.scaled(2.0).jitter is c.jitter
    with pytest.raises(ValueError, match="at least 10"):
        ServiceCurve.from_samples({1: [MS] * 3}, 1)
