"""Peak search: the highest offered load whose latency percentile meets an SLO.

LoadGen's "find peak performance" mode, written as a *profile*: a plain generator that
yields the next rate to probe and receives the previous probe's :class:`Probe` via
``send``. It needs no backend, so it is tested on its own (or against a simulated server),
and the ``online-peak`` scenario drives it with real runs.

Search
------
1. **Widen**: probe ``start_qps``; while probes pass, double the rate. If the first probe
   fails, halve instead until one passes (or the rate drops below ``min_qps``).
2. **Bisect** between the highest passing and the lowest failing rate until
   ``(fail - pass) / pass <= rel_tol``.
3. The result is the highest passing rate (``None`` if none passed). ``max_probes`` bounds
   the total number of probes; a search cut short reports ``converged = False``.

A probe *passes* when its run was able to support the claim: every query completed and the
target percentile (MLPerf early-stopping estimate where valid) is within the SLO.

Usage::

    prof = peak_profile(start_qps=100, rel_tol=0.05)
    result = drive(prof, lambda qps: my_probe(qps))   # or step through with next()/send()
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Probe:
    """One full run at ``qps``: its target-percentile latency, validity and SLO verdict."""

    qps: float
    latency_ms: float | None
    valid: bool
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PeakResult:
    """Outcome of a search: ``best_qps`` is the highest passing rate probed (None if none)."""

    best_qps: float | None
    probes: tuple[Probe, ...]
    converged: bool
    lowest_failing_qps: float | None

    @property
    def n_probes(self) -> int:
        return len(self.probes)


PeakProfile = Generator[float, Probe, PeakResult]


def peak_profile(
    start_qps: float,
    *,
    rel_tol: float = 0.05,
    max_probes: int = 20,
    min_qps: float = 1e-3,
    max_qps: float | None = None,
) -> PeakProfile:
    """Generator of probe rates (see the module docstring); returns a :class:`PeakResult`."""
    if not start_qps > 0:
        raise ValueError(f"start_qps must be > 0, got {start_qps}")
    if not 0 < rel_tol < 1:
        raise ValueError(f"rel_tol must be in (0, 1), got {rel_tol}")
    if max_probes < 1:
        raise ValueError(f"max_probes must be >= 1, got {max_probes}")
    probes: list[Probe] = []
    lo: float | None = None  # highest passing
    hi: float | None = None  # lowest failing

    def budget_left() -> bool:
        return len(probes) < max_probes

    rate = start_qps if max_qps is None else min(start_qps, max_qps)
    # widen
    while budget_left():
        p = yield rate
        probes.append(p)
        if p.passed:
            lo = rate if lo is None else max(lo, rate)
            if hi is not None:
                break
            if max_qps is not None and rate >= max_qps:
                return PeakResult(lo, tuple(probes), True, hi)
            rate = rate * 2 if max_qps is None else min(rate * 2, max_qps)
        else:
            hi = rate if hi is None else min(hi, rate)
            if lo is not None:
                break
            rate = rate / 2
            if rate < min_qps:
                return PeakResult(None, tuple(probes), True, hi)
    # bisect
    while lo is not None and hi is not None and (hi - lo) / lo > rel_tol and budget_left():
        rate = (lo + hi) / 2
        p = yield rate
        probes.append(p)
        if p.passed:
            lo = rate
        else:
            hi = rate
    converged = lo is not None and hi is not None and (hi - lo) / lo <= rel_tol
    return PeakResult(lo, tuple(probes), converged, hi)


def drive(profile: PeakProfile, probe: Callable[[float], Probe]) -> PeakResult:
    """Run ``profile`` to completion, calling ``probe(qps)`` for every rate it yields."""
    try:
        rate = next(profile)
        while True:
            rate = profile.send(probe(rate))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
