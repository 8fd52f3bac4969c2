"""Continuous-batching token serving simulation: closed-form limits and the SLO search."""

from __future__ import annotations

import pytest

from harness.planning.token_serving import max_rate_under_slo, simulate_tokens


def step(b: int) -> float:
    return 0.010 + 0.0001 * b  # 10 ms per step plus 0.1 ms per sequence


def prefill(n: int) -> float:
    return 0.050 * n


def test_light_load_gives_the_unloaded_latencies() -> None:
    r = simulate_tokens(0.01, step, prefill, output_tokens=50, kv_capacity=64, n_requests=200)
    assert r.ttft_p99_s == pytest.approx(prefill(1) + step(1), rel=1e-6)
    assert r.tpot_p99_s == pytest.approx(step(1), rel=1e-6)
    assert r.mean_batch == pytest.approx(1.0, rel=0.02)


def test_kv_capacity_of_one_serialises_requests() -> None:
    r = simulate_tokens(100.0, step, prefill, output_tokens=20, kv_capacity=1, n_requests=200)
    per_request = prefill(1) + 20 * step(1)
    assert r.tokens_per_s == pytest.approx(20 / per_request, rel=0.05)
    assert r.mean_batch == pytest.approx(1.0)


def test_batching_raises_throughput_with_capacity() -> None:
    one = simulate_tokens(50.0, step, prefill, output_tokens=20, kv_capacity=1, n_requests=300)
    many = simulate_tokens(50.0, step, prefill, output_tokens=20, kv_capacity=64, n_requests=300)
    assert many.tokens_per_s > 3 * one.tokens_per_s and many.mean_batch > 1


def test_max_rate_meets_the_slos_and_more_load_does_not() -> None:
    best = max_rate_under_slo(step, prefill, output_tokens=50, kv_capacity=64, ttft_slo_s=0.5, tpot_slo_s=0.03)
    assert best is not None and best.ttft_p99_s <= 0.5 and best.tpot_p99_s <= 0.03
    over = simulate_tokens(best.rate_rps * 2, step, prefill, output_tokens=50, kv_capacity=64)
    assert over.ttft_p99_s > 0.5 or over.tpot_p99_s > 0.03
    assert max_rate_under_slo(step, prefill, output_tokens=50, kv_capacity=64, ttft_slo_s=0.01, tpot_slo_s=1) is None
