"""Discrete-event simulation of the online scenario [MLPerf Server].

Queries arrive on a seeded schedule (:mod:`harness.measure.load.arrivals`), wait in one FIFO queue, and are
batched by the same :class:`~harness.measure.load.batching.DynamicBatcher` policy the real ``online``
scenario uses; a batch of ``k`` takes ``t(k)`` from a :class:`ServiceCurve` (measured from
offline sweeps, or projected by :mod:`harness.planning.projection`) on one of ``instances`` identical
model instances. A curve built from measured samples (:meth:`ServiceCurve.from_samples`) also
carries their spread, and each simulated batch then draws its service time from it: a queue's
tail depends on the service time's tail, not only its median. The event loop is :func:`harness.measure.load.batching.simulate` (heap of instance-free
times, virtual clock; 1e5 queries in a fraction of a second).

Latency = completion - arrival (the simulated issuer never lags). Percentiles use LoadGen's
``sorted[floor(n * p)]``. :func:`max_qps_under_slo` bisects the offered load for the highest QPS
whose p-th percentile meets an SLO, like LoadGen's find-peak mode but on the virtual clock.

N devices: ``instances`` model instances share one queue (a load balancer that always feeds an
idle instance). :func:`per_device_split` gives the conservative alternative, random routing, in
which each of ``n`` devices sees an independent stream at ``qps / n``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.measure.load import arrivals
from harness.measure.load.batching import DynamicBatcher, simulate

#: Quantile levels a measured service-time distribution is kept at (:meth:`ServiceCurve.from_samples`).
JITTER_LEVELS = 1001


@dataclass(frozen=True)
class ServiceCurve:
    """Batch service time ``t(k)`` in ns for ``k = 1..max_batch`` (index ``k - 1``).

    ``jitter`` (optional, shape ``(max_batch, JITTER_LEVELS)``) is the measured spread of the
    service time around ``t(k)``: row ``k - 1`` holds the quantile function of
    ``service / median service`` at evenly spaced probabilities 0..1. With it,
    :func:`simulate_online` draws each batch's service time from that distribution (seeded);
    without it every batch of ``k`` takes exactly ``t(k)``.
    """

    service_ns: np.ndarray
    provenance: str = "projected:roofline"
    jitter: np.ndarray | None = None

    def __post_init__(self) -> None:
        arr = np.asarray(self.service_ns, dtype=np.int64)
        if arr.ndim != 1 or arr.size < 1:
            raise ValueError("service_ns must be a non-empty 1-D array (t(1), t(2), ...)")
        if np.any(arr <= 0):
            raise ValueError("service times must be > 0 ns")
        object.__setattr__(self, "service_ns", arr)
        if self.jitter is not None:
            j = np.asarray(self.jitter, dtype=np.float64)
            if j.ndim != 2 or j.shape[0] != arr.size or j.shape[1] < 2:
                raise ValueError(f"jitter must have shape ({arr.size}, levels >= 2), got {j.shape}")
            if np.any(j <= 0) or np.any(np.diff(j, axis=1) < 0):
                raise ValueError("jitter rows must be positive, non-decreasing quantile functions")
            object.__setattr__(self, "jitter", j)

    def sampler(self, seed: int, draws: int) -> Callable[[int], int]:
        """``k -> service time (ns)`` for the simulator: ``t(k)`` exactly without ``jitter``,
        else ``t(k)`` times a seeded draw from row ``k - 1`` of ``jitter`` (``draws`` uniform
        variates are drawn up front and reused cyclically)."""
        table = [0, *self.service_ns.tolist()]
        if self.jitter is None:
            return table.__getitem__
        jitter = self.jitter
        levels = jitter.shape[1]
        u = np.random.default_rng(seed).random(max(int(draws), 1)) * (levels - 1)
        lo = np.floor(u).astype(np.int64)
        frac = u - lo
        hi = np.minimum(lo + 1, levels - 1)
        n = u.size
        state = [0]

        def draw(k: int) -> int:
            i = state[0] % n
            state[0] += 1
            row = jitter[k - 1]
            factor = row[lo[i]] + (row[hi[i]] - row[lo[i]]) * frac[i]
            return max(1, int(round(table[k] * factor)))

        return draw

    @property
    def max_batch(self) -> int:
        return int(self.service_ns.size)

    def __call__(self, k: int) -> int:
        return int(self.service_ns[k - 1])

    def capacity_qps(self, max_batch_size: int | None = None) -> float:
        """Highest sustainable rate of one instance: max over k of k / t(k)."""
        m = self.max_batch if max_batch_size is None else min(max_batch_size, self.max_batch)
        ks = np.arange(1, m + 1)
        return float(np.max(ks / (self.service_ns[:m] * 1e-9)))

    def scaled(self, factor: float) -> ServiceCurve:
        """Every service time multiplied by ``factor`` (e.g. the pessimistic end of a range);
        the relative spread (``jitter``) is kept."""
        return ServiceCurve(
            np.maximum(1, np.round(self.service_ns * factor)).astype(np.int64), self.provenance, self.jitter
        )

    @classmethod
    def from_points(
        cls, batch_sizes: Sequence[int], latency_ns: Sequence[float], max_batch: int, provenance: str = "measured"
    ) -> ServiceCurve:
        """Piecewise-linear interpolation through measured (batch size, latency) points;
        linear extrapolation beyond the last two points (flat below the first)."""
        b = np.asarray(batch_sizes, dtype=np.float64)
        t = np.asarray(latency_ns, dtype=np.float64)
        if b.size == 0 or b.size != t.size:
            raise ValueError("batch_sizes and latency_ns must be non-empty and equally long")
        order = np.argsort(b)
        b, t = b[order], t[order]
        ks = np.arange(1, max_batch + 1, dtype=np.float64)
        out = np.interp(ks, b, t)
        if b.size >= 2 and max_batch > b[-1]:
            slope = max((t[-1] - t[-2]) / (b[-1] - b[-2]), 0.0)
            beyond = ks > b[-1]
            out[beyond] = t[-1] + slope * (ks[beyond] - b[-1])
        return cls(np.maximum(1, np.round(out)).astype(np.int64), provenance)

    @classmethod
    def from_samples(
        cls, samples_ns: Mapping[int, Sequence[int] | np.ndarray], max_batch: int, provenance: str = "measured"
    ) -> ServiceCurve:
        """Curve through the median of each measured batch size's service times (as
        :meth:`from_points`), with ``jitter`` from the same samples: batch ``k`` takes the
        relative spread of the nearest measured batch size at or below ``k`` (the smallest one
        below the first). Each batch size needs at least 10 samples."""
        if not samples_ns:
            raise ValueError("samples_ns must name at least one batch size")
        sizes = sorted(samples_ns)
        medians, rows = [], []
        probs = np.linspace(0.0, 1.0, JITTER_LEVELS)
        for b in sizes:
            x = np.asarray(samples_ns[b], dtype=np.float64)
            x = x[np.isfinite(x) & (x > 0)]
            if x.size < 10:
                raise ValueError(f"batch size {b}: {x.size} valid service times, need at least 10")
            med = float(np.median(x))
            medians.append(med)
            rows.append(np.quantile(x, probs) / med)
        base = cls.from_points(sizes, medians, max_batch, provenance)
        jitter = np.empty((max_batch, JITTER_LEVELS))
        for k in range(1, max_batch + 1):
            below = [i for i, b in enumerate(sizes) if b <= k]
            jitter[k - 1] = rows[below[-1] if below else 0]
        return cls(base.service_ns, provenance, jitter)


@dataclass(frozen=True)
class SimSummary:
    """Outcome of one simulated load level (times in ms)."""

    qps: float
    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    achieved_qps: float
    mean_batch: float
    mean_in_system: float  # time-average number of queries in the system (Little's L)
    utilisation: float  # busy instance-time / (instances * span)

    def percentile_ms(self, p: float) -> float:
        return {0.5: self.p50_ms, 0.9: self.p90_ms, 0.99: self.p99_ms}[p]


def _pct(sorted_ns: np.ndarray, p: float) -> float:
    return float(sorted_ns[min(int(math.floor(sorted_ns.size * p)), sorted_ns.size - 1)]) / 1e6


def simulate_online(
    curve: ServiceCurve,
    qps: float,
    policy: DynamicBatcher,
    *,
    instances: int = 1,
    n_queries: int = 20_000,
    seed: int = 0,
    arrival: str = "poisson",
    burstiness: float = 1.0,
    warmup_fraction: float = 0.1,
) -> SimSummary:
    """Simulate ``n_queries`` arrivals at ``qps``; statistics skip the first ``warmup_fraction``
    of queries (the empty-system start). A curve with ``jitter`` draws service times from its
    measured spread (seeded by ``seed + 1``); the same seed gives the same result."""
    if policy.max_batch_size > curve.max_batch:
        raise ValueError(
            f"policy max_batch_size {policy.max_batch_size} exceeds the service curve ({curve.max_batch} batch sizes)"
        )
    arr = arrivals.schedule(arrival, qps, count=n_queries, seed=seed, burstiness=burstiness)
    res = simulate(arr, curve.sampler(seed + 1, n_queries), policy, instances)
    lat = res.completed_ns - arr
    skip = int(n_queries * warmup_fraction)
    s = np.sort(lat[skip:])
    span_ns = max(int(res.completed_ns.max()) - int(arr[0]), 1)
    # busy time: a batch of k shares its service time among its k queries
    busy = float(np.sum((res.completed_ns - res.dispatch_ns) / res.batch_size))
    return SimSummary(
        qps=qps,
        n=int(s.size),
        p50_ms=_pct(s, 0.5),
        p90_ms=_pct(s, 0.9),
        p99_ms=_pct(s, 0.99),
        mean_ms=float(s.mean()) / 1e6,
        achieved_qps=n_queries / (span_ns / 1e9),
        mean_batch=float(res.batch_size.mean()),
        mean_in_system=float(lat.sum()) / span_ns,
        utilisation=busy / (instances * span_ns),
    )


@dataclass(frozen=True)
class PeakResult:
    """Highest simulated QPS meeting the SLO, and the summary there (None when even the
    lowest probed load fails)."""

    qps: float
    summary: SimSummary | None
    probes: tuple[tuple[float, float], ...]  # (qps, percentile latency ms)


def max_qps_under_slo(
    curve: ServiceCurve,
    slo_ms: float,
    policy: DynamicBatcher,
    *,
    percentile: float = 0.99,
    instances: int = 1,
    n_queries: int = 8_000,
    seed: int = 0,
    arrival: str = "poisson",
    burstiness: float = 1.0,
    rel_tol: float = 0.02,
    max_probes: int = 14,
) -> PeakResult:
    """Bisect the offered load between 0 and the capacity ``instances * max_k k / t(k)`` for
    the highest rate whose ``percentile`` latency is <= ``slo_ms``."""
    if slo_ms <= 0:
        raise ValueError(f"slo_ms must be > 0, got {slo_ms}")
    cap = instances * curve.capacity_qps(policy.max_batch_size)
    lo, hi = 0.0, cap
    best: SimSummary | None = None
    probes: list[tuple[float, float]] = []
    for _ in range(max_probes):
        mid = hi * 0.999 if not probes else (lo + hi) / 2
        if mid <= 0:
            break
        s = simulate_online(
            curve,
            mid,
            policy,
            instances=instances,
            n_queries=n_queries,
            seed=seed,
            arrival=arrival,
            burstiness=burstiness,
        )
        lat = _pct_of(s, percentile)
        probes.append((mid, lat))
        if lat <= slo_ms:
            lo, best = mid, s
            if not probes[:-1]:
                break  # capacity itself passes
        else:
            hi = mid
        if lo > 0 and (hi - lo) / lo <= rel_tol:
            break
    return PeakResult(lo, best, tuple(probes))


def _pct_of(s: SimSummary, p: float) -> float:
    if p in (0.5, 0.9, 0.99):
        return s.percentile_ms(p)
    raise ValueError(f"percentile must be one of 0.5, 0.9, 0.99; got {p}")


def per_device_split(total_qps: float, devices: int) -> float:
    """Rate each device sees under random routing of a Poisson stream (still Poisson)."""
    if devices < 1:
        raise ValueError(f"devices must be >= 1, got {devices}")
    return total_qps / devices


def suggest_batcher(curve: ServiceCurve, slo_ms: float) -> DynamicBatcher:
    """A batcher setting for an SLO: the largest ``max_batch_size`` (power of two or the curve's
    end) with ``2 t(k) <= slo`` (one batch in service ahead plus its own), and a queue delay of
    a quarter of what the SLO leaves after that (0 when nothing is left)."""
    slo_ns = slo_ms * 1e6
    cands = sorted({k for k in [2**i for i in range(16)] if k <= curve.max_batch} | {1})
    ok = [k for k in cands if 2 * curve(k) <= slo_ns] or [1]
    k = ok[-1]
    delay = max(0.0, (slo_ns - 2 * curve(k)) / 4)
    return DynamicBatcher(k, int(delay) if k > 1 else 0)
