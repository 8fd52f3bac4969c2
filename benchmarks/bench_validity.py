"""Validity statistics on simulated queues: false alarms, power and interval coverage.

Seeded simulations, no model and no clock: every figure is computed from simulated latencies.

* Open loop (the ``online`` scenario's steady-state check, :func:`harness.core.batch_means.trend_test`):
  an M/D/1 queue at rho = 0.6 (Poisson arrivals, constant 1 ms service, as a model server's
  near-constant batch time; latencies by Lindley's recursion, started from a warm queue) is
  called ``unstable`` in at most 5 % of 100 runs of 10 000 queries; the same queue with
  service time growing linearly by 20 % over the run in at least 95 %. The check it replaces
  (median of three windows within 10 %) is shown alongside, and so is an M/M/1 queue
  (exponential service: much noisier latencies, figures only).
* Online p99 intervals (:func:`harness.core.batch_means.quantile_ci_batch_means`): at least
  90 % of 200 runs cover the true p99 at nominal 95 %, for M/D/1 and for M/M/1. The true p99
  is taken from one run of 2 000 000 queries (for M/M/1 the closed form
  ``ln(100) / (mu - lambda)`` is printed beside it). The independent-sample exact bootstrap
  it replaces is shown alongside.
* Closed loop (:func:`harness.core.batch_means.closed_loop_stability`, figures only): a
  back-to-back loop of gamma service times (mean 2 ms, CV 0.5) over 6 s, stationary and with
  +20 % drift, and how often ``inconclusive`` resolves when the run is doubled up to 60 s.

Prints a Markdown table; exits 1 when an open-loop or coverage target is missed.
Usage: ``python benchmarks/bench_validity.py [--runs 100] [--queries 10000]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from harness.core import batch_means, stats, steady_state

RHO = 0.6
SERVICE_MS = 1.0
WARM = 2000  # queries simulated before the measured ones (the run starts from a warm queue)


def queue_latencies_ms(
    rng: np.random.Generator, n: int, drift: float = 0.0, service: str = "det"
) -> tuple[np.ndarray, np.ndarray]:
    """(arrival times, latencies) in ms of ``n`` queries of an M/D/1 (``service="det"``) or
    M/M/1 (``"exp"``) queue at ``RHO``.

    Service time of measured query ``i`` has mean ``SERVICE_MS * (1 + drift * i / n)``.
    Lindley: ``W[i] = max(0, W[i-1] + S[i-1] - A[i])``, latency ``W[i] + S[i]``; vectorised as
    ``W = C - min(0, cummin(C))`` with ``C`` the cumulative sum of ``S[i-1] - A[i]``.
    """
    total = WARM + n
    gaps = rng.exponential(SERVICE_MS / RHO, total)
    scale = np.ones(total)
    scale[WARM:] += drift * np.arange(n) / n
    base = rng.exponential(SERVICE_MS, total) if service == "exp" else np.full(total, SERVICE_MS)
    service_ms = base * scale
    x = np.empty(total)
    x[0] = 0.0
    x[1:] = service_ms[:-1] - gaps[1:]
    c = np.cumsum(x)
    w = c - np.minimum(np.minimum.accumulate(c), 0.0)
    arrivals = np.cumsum(gaps)
    return arrivals[WARM:] - arrivals[WARM], (w + service_ms)[WARM:]


def open_loop_rates(runs: int, n: int, seed: int, service: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, drift in (("stationary", 0.0), ("drift +20 %", 0.2)):
        new = old = inconclusive = 0
        for r in range(runs):
            rng = np.random.default_rng([seed, r, int(drift * 100), service == "exp"])
            t, lat = queue_latencies_ms(rng, n, drift, service)
            v = batch_means.trend_test(t, lat).verdict
            new += v == "unstable"
            inconclusive += v == "inconclusive"
            old += not steady_state.steady_state(lat, n_windows=3, tolerance=0.10).stable
        out[f"{label}: unstable"] = new / runs
        out[f"{label}: inconclusive"] = inconclusive / runs
        out[f"{label}: old check unstable"] = old / runs
    return out


def coverage(runs: int, n: int, seed: int, service: str) -> dict[str, float]:
    _, long = queue_latencies_ms(np.random.default_rng([seed, 10**6, service == "exp"]), 2_000_000, 0.0, service)
    true_p99 = stats.percentile(long, 0.99)
    new = old = 0
    widths = []
    for r in range(runs):
        _, lat = queue_latencies_ms(np.random.default_rng([seed, 7, r, service == "exp"]), n, 0.0, service)
        ci = batch_means.quantile_ci_batch_means(lat, 0.99, 0.95)
        new += ci.low <= true_p99 <= ci.high
        widths.append((ci.high - ci.low) / ci.estimate)
        lo, hi = stats.quantile_ci(lat, 0.99, 0.95)
        old += lo <= true_p99 <= hi
    out = {"true p99 (ms, 2e6 queries)": true_p99}
    if service == "exp":
        out["closed-form p99 (ms)"] = math.log(100) / (1 / SERVICE_MS - RHO / SERVICE_MS)
    out.update(
        {
            "p99 CI coverage, batch means": new / runs,
            "p99 CI coverage, iid bootstrap (old)": old / runs,
            "p99 CI median width / estimate": float(np.median(widths)),
        }
    )
    return out


def closed_loop_rates(runs: int, seed: int) -> dict[str, float]:
    out: dict[str, float] = {}
    mean_ns, cv = 2e6, 0.5
    shape = 1 / cv**2
    for label, drift in (("stationary", 0.0), ("drift +20 %", 0.2)):
        counts = {"stable": 0, "unstable": 0, "inconclusive": 0}
        extended = 0
        for r in range(runs):
            rng = np.random.default_rng([seed, 99, r, int(drift * 100)])
            dur_s = 6.0
            n = int(60.0 * 1e9 / mean_ns * 1.3)
            s = rng.gamma(shape, mean_ns / shape, n)
            ends = np.cumsum(s)
            # service grows by `drift` per 6 s of the run, linearly in time
            s = s * (1 + drift * ends / 6e9)
            ends = np.cumsum(s).astype(np.int64)
            while True:
                sel = ends[ends <= dur_s * 1e9]
                v = batch_means.closed_loop_stability(sel, start_ns=0).verdict
                if v != "inconclusive" or dur_s >= 60.0:
                    break
                dur_s = min(dur_s * 2, 60.0)
                extended += 1
            counts[v] += 1
        for k, c in counts.items():
            out[f"{label}: {k}"] = c / runs
        out[f"{label}: extensions per run"] = extended / runs
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--coverage-runs", type=int, default=200)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args()
    t0 = time.monotonic()
    figures: dict[str, dict[str, float]] = {}
    for service, name in (("det", "M/D/1"), ("exp", "M/M/1")):
        figures[name] = {
            **open_loop_rates(args.runs, args.queries, args.seed, service),
            **coverage(args.coverage_runs, args.queries, args.seed, service),
        }
    cl = closed_loop_rates(args.runs, args.seed)
    md1, mm1 = figures["M/D/1"], figures["M/M/1"]
    checks = [
        ("open loop, stationary M/D/1 rho 0.6: called unstable", md1["stationary: unstable"], "<= 0.05", False),
        ("open loop, M/D/1 +20 % service drift: called unstable", md1["drift +20 %: unstable"], ">= 0.95", True),
        ("online p99 CI coverage at nominal 0.95, M/D/1", md1["p99 CI coverage, batch means"], ">= 0.90", True),
        ("online p99 CI coverage at nominal 0.95, M/M/1", mm1["p99 CI coverage, batch means"], ">= 0.90", True),
    ]
    ok = {}
    for name, val, req, at_least in checks:
        bound = float(req.split()[1])
        ok[name] = val >= bound if at_least else val <= bound
    print(f"simulated: {args.runs} runs x {args.queries} queries per open-loop case (rho {RHO}), seed {args.seed}\n")
    print("| target | measured | required | result |")
    print("|---|---:|---|---|")
    for name, val, req, _ in checks:
        print(f"| {name} | {val:.3f} | {req} | {'pass' if ok[name] else 'FAIL'} |")
    print("\n| figure | M/D/1 | M/M/1 |")
    print("|---|---:|---:|")
    for k in md1:
        print(f"| {k} | {md1[k]:.3f} | {mm1.get(k, math.nan):.3f} |")
    extra = [k for k in mm1 if k not in md1]
    for k in extra:
        print(f"| {k} | | {mm1[k]:.3f} |")
    print("\n| closed loop (6 s, doubled up to 60 s while inconclusive) | fraction |")
    print("|---|---:|")
    for k, v in cl.items():
        print(f"| {k} | {v:.3f} |")
    print(f"\nelapsed {time.monotonic() - t0:.1f} s")
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
