"""Peak search: the profile alone, against a simulated server, and end to end."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_online import FakeCtx

from harness.core.clock import now_ns, wait_until_ns
from harness.measure.backends.null import NullBackend
from harness.measure.load import arrivals
from harness.measure.load.batching import DynamicBatcher, simulate
from harness.measure.load.peak import Probe, drive, peak_profile
from harness.measure.scenarios.online import OnlinePeakOptions, OnlinePeakScenario


def threshold_probe(cap: float):
    return lambda q: Probe(q, None, True, q <= cap)


@settings(max_examples=80, deadline=None)
@given(
    cap=st.floats(min_value=0.5, max_value=1e6),
    start=st.floats(min_value=1.0, max_value=1e5),
    tol=st.sampled_from([0.01, 0.05, 0.2]),
)
def test_profile_brackets_a_threshold(cap: float, start: float, tol: float) -> None:
    r = drive(peak_profile(start, rel_tol=tol, max_probes=200), threshold_probe(cap))
    assert r.converged
    assert r.best_qps is not None and r.lowest_failing_qps is not None
    assert r.best_qps <= cap < r.lowest_failing_qps
    assert (r.lowest_failing_qps - r.best_qps) / r.best_qps <= tol
    assert r.n_probes == len(r.probes)
    # every passing probe is below every failing probe (monotone system)
    passing = [p.qps for p in r.probes if p.passed]
    failing = [p.qps for p in r.probes if not p.passed]
    assert max(passing) < min(failing)


def test_profile_nothing_passes_and_budget() -> None:
    r = drive(peak_profile(100.0, min_qps=1.0), threshold_probe(0.1))
    assert r.best_qps is None and r.probes[-1].qps < 2.0
    r = drive(peak_profile(1.0, max_probes=3), threshold_probe(1e9))
    assert r.n_probes == 3 and not r.converged and r.best_qps == 4.0
    r = drive(peak_profile(1.0, max_qps=10.0), threshold_probe(1e9))
    assert r.best_qps == 10.0
    with pytest.raises(ValueError, match="rel_tol"):
        next(peak_profile(1.0, rel_tol=0))


def test_profile_is_a_plain_generator() -> None:
    prof = peak_profile(10.0, rel_tol=0.5)
    assert next(prof) == 10.0
    assert prof.send(Probe(10.0, 1.0, True, True)) == 20.0
    assert prof.send(Probe(20.0, 9.0, True, False)) == 15.0
    with pytest.raises(StopIteration) as stop:
        prof.send(Probe(15.0, 2.0, True, True))
    assert stop.value.value.best_qps == 15.0


def test_converges_on_simulated_server_with_known_capacity() -> None:
    service_ns = 1_000_000  # 1 ms, one instance, batch 1: capacity 1000 QPS
    cap = 1e9 / service_ns
    slo_ms = 20.0

    def probe(qps: float) -> Probe:
        arr = arrivals.poisson(qps, count=3000, seed=7)
        r = simulate(arr, lambda k: service_ns, DynamicBatcher(1, 0), 1)
        lat = np.sort(r.completed_ns - arr)
        p99 = lat[int(lat.size * 0.99)] / 1e6
        return Probe(qps, p99, True, p99 <= slo_ms)

    r = drive(peak_profile(50.0, rel_tol=0.02), probe)
    assert r.converged and r.best_qps is not None
    assert 0.7 * cap <= r.best_qps < cap  # above capacity the queue grows without bound


class FixedService(NullBackend):
    """Takes a fixed service time per batch (sleep, then spin): capacity is known."""

    def __init__(self, service_ns: int) -> None:
        super().__init__()
        self.service_ns = service_ns

    def infer(self, prepared: Any) -> None:
        wait_until_ns(now_ns() + self.service_ns)


def test_online_peak_scenario_end_to_end() -> None:
    service_ns = 2_000_000  # capacity 500 QPS
    cap = 1e9 / service_ns
    opts = OnlinePeakOptions(
        target_qps=100.0,
        slo_ms=40.0,
        target_percentile=0.9,
        rel_tol=0.15,
        max_probes=10,
        stop={"min_duration_s": 0.4, "min_queries": 64, "max_duration_s": 10, "warmup_s": 0.0, "warmup_queries": 2},
    )
    ctx = FakeCtx(FixedService(service_ns))
    res = OnlinePeakScenario(opts).run(ctx)
    peak = res.extra["peak"]
    best = res.metrics["peak_qps"].value
    assert ctx.windows == 1  # probes ran outside the window, the confirmatory run inside
    assert best is not None and 0.3 * cap <= best <= 1.1 * cap
    assert peak["n_probes"] == len(peak["probes"]) >= 3
    assert all({"qps", "latency_ms", "valid", "passed"} <= set(p) for p in peak["probes"])
    assert any(not p["passed"] for p in peak["probes"])  # the search did find a failing rate
    assert peak["final_qps"] == best
    assert isinstance(peak["final_valid"], bool)
    assert res.metrics["offered_qps"].value == best
