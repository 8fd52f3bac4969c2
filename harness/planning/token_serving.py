"""LLM serving simulation: continuous batching with prefill, decode and a KV-cache capacity.

One instance (a tensor-parallel group) serves Poisson arrivals of requests, each with a
prompt and ``output_tokens`` to generate. Event-driven (units: seconds):

* waiting requests are admitted while fewer than ``kv_capacity`` sequences run (the KV cache
  of each admitted sequence must fit; admission is FIFO);
* admitting ``n`` requests stalls the instance for ``prefill_s(n)`` (their prompts' forward);
* every decode step of the ``b`` running sequences takes ``step_s(b)`` and gives each one token;
  a request's first token comes with the first step after its prefill;
* TTFT = first token - arrival; TPOT = (last token - first token) / (output_tokens - 1) per
  request; p99 over requests (the first 10 % are warm-up).

Between events (an arrival that can be admitted, a sequence finishing) the batch does not change,
so steps are advanced in blocks: the cost is per event, not per token.
:func:`max_rate_under_slo` bisects the request rate whose p99 TTFT and TPOT meet the SLOs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

WARMUP_FRACTION = 0.1


@dataclass(frozen=True)
class TokenSimResult:
    rate_rps: float
    ttft_p99_s: float
    tpot_p99_s: float
    tokens_per_s: float
    mean_batch: float


def simulate_tokens(
    rate_rps: float,
    step_s: Callable[[int], float],
    prefill_s: Callable[[int], float],
    *,
    output_tokens: int,
    kv_capacity: int,
    n_requests: int = 400,
    seed: int = 0,
) -> TokenSimResult:
    """Simulate ``n_requests`` Poisson arrivals at ``rate_rps`` (module docstring)."""
    if rate_rps <= 0 or kv_capacity < 1 or output_tokens < 1:
        raise ValueError("rate_rps > 0, kv_capacity >= 1 and output_tokens >= 1 are required")
    rng = np.random.default_rng(seed)
    arr = np.cumsum(rng.exponential(1.0 / rate_rps, n_requests))
    first = np.full(n_requests, math.nan)
    finish = np.full(n_requests, math.nan)
    remaining: dict[int, int] = {}
    nxt, t, tokens_steps, steps = 0, 0.0, 0.0, 0
    while nxt < n_requests or remaining:
        new = []
        while nxt < n_requests and arr[nxt] <= t and len(remaining) < kv_capacity:
            remaining[nxt] = output_tokens
            new.append(nxt)
            nxt += 1
        if new:
            t += prefill_s(len(new))
        if not remaining:
            t = max(t, float(arr[nxt]))
            continue
        dt = step_s(len(remaining))
        m = min(remaining.values())
        if nxt < n_requests and len(remaining) < kv_capacity:
            m = min(m, max(1, math.ceil((float(arr[nxt]) - t) / dt)))
        for i in remaining:
            if math.isnan(first[i]):
                first[i] = t + dt
        t += m * dt
        steps += m
        tokens_steps += m * len(remaining)
        for i in [i for i, r in remaining.items() if r == m]:
            finish[i] = t
            del remaining[i]
        for i in remaining:
            remaining[i] -= m
    skip = int(n_requests * WARMUP_FRACTION)
    ttft = np.sort((first - arr)[skip:])
    tpot = np.sort(((finish - first) / max(1, output_tokens - 1))[skip:])
    p = _p99
    span = float(np.nanmax(finish) - arr[0])
    return TokenSimResult(rate_rps, p(ttft), p(tpot), n_requests * output_tokens / span, tokens_steps / max(1, steps))


def _p99(a: np.ndarray) -> float:
    """LoadGen's order statistic ``sorted[floor(n * 0.99)]`` of a sorted array."""
    return float(a[min(int(math.floor(a.size * 0.99)), a.size - 1)])


def max_rate_under_slo(
    step_s: Callable[[int], float],
    prefill_s: Callable[[int], float],
    *,
    output_tokens: int,
    kv_capacity: int,
    ttft_slo_s: float,
    tpot_slo_s: float,
    probes: int = 8,
    n_requests: int = 400,
) -> TokenSimResult | None:
    """Highest simulated request rate (bisection between 0 and the instance's capacity at full
    KV occupancy) whose p99 TTFT and TPOT meet the SLOs; None when even 2 % of it fails."""
    cap = kv_capacity / step_s(kv_capacity) / output_tokens
    lo, hi, best = 0.0, cap, None
    r = simulate_tokens(
        0.02 * cap, step_s, prefill_s, output_tokens=output_tokens, kv_capacity=kv_capacity, n_requests=n_requests
    )
    if r.ttft_p99_s > ttft_slo_s or r.tpot_p99_s > tpot_slo_s:
        return None
    lo, best = 0.02 * cap, r
    for _ in range(probes):
        mid = (lo + hi) / 2
        r = simulate_tokens(
            mid, step_s, prefill_s, output_tokens=output_tokens, kv_capacity=kv_capacity, n_requests=n_requests
        )
        if r.ttft_p99_s <= ttft_slo_s and r.tpot_p99_s <= tpot_slo_s:
            lo, best = mid, r
        else:
            hi = mid
    return best
