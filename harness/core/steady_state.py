"""Window-based steady state (perf_analyzer's rule): max/min of the last windows within a tolerance.

The gate uses its spread to judge how far an unstable run can prove a change. The validity
verdicts of the scenarios use the batch-means tests of :mod:`harness.core.batch_means`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.core.stats import _as_1d


@dataclass(frozen=True)
class SteadyStateResult:
    """Per-window values and whether max/min stays within ``1 + tolerance``.

    ``window_medians``: median of ``values`` per window (empty when no values were given);
    ``window_throughput_per_s``: events (or weights) per second per window (only when
    timestamps were given). ``stable`` requires every checked series to pass.
    """

    stable: bool
    n_windows: int
    tolerance: float
    ratio: float
    window_medians: tuple[float, ...] = ()
    window_throughput_per_s: tuple[float, ...] = ()
    median_ratio: float = math.nan
    throughput_ratio: float = math.nan
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _ratio(x: np.ndarray) -> float:
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo <= 0:
        return math.inf if hi > 0 else 1.0
    return hi / lo


def steady_state(
    values: Any = None,
    n_windows: int = 3,
    tolerance: float = 0.10,
    *,
    timestamps_ns: Any = None,
    weights: Any = None,
) -> SteadyStateResult:
    """Is the measurement stable over its last ``n_windows`` windows (perf_analyzer's rule)?

    * ``values`` only: a series in time order (latencies, or per-window throughputs) split
      into ``n_windows`` contiguous windows of equal count; the median of each window must
      satisfy ``max/min <= 1 + tolerance``.
    * ``timestamps_ns`` (e.g. ``completed_ns``): windows are equal time spans between the
      first and last timestamp; the throughput per window (count, or sum of ``weights`` such
      as batch sizes, per second) must be within tolerance, and so must the per-window median
      of ``values`` when given (same length as the timestamps).
    """
    if n_windows < 2:
        raise ValueError(f"n_windows must be >= 2, got {n_windows}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    limit = 1.0 + tolerance
    v = None if values is None else _as_1d(values).astype(float)
    if timestamps_ns is None:
        if v is None:
            raise ValueError("steady_state needs values, timestamps_ns, or both")
        if v.size < n_windows:
            return SteadyStateResult(
                False, n_windows, tolerance, math.nan, reason=f"{v.size} values < {n_windows} windows"
            )
        med = np.array([np.median(w) for w in np.array_split(v, n_windows)])
        r = _ratio(med)
        return SteadyStateResult(r <= limit, n_windows, tolerance, r, tuple(map(float, med)), median_ratio=r)
    ts = _as_1d(timestamps_ns, "timestamps_ns")
    if v is not None and v.size != ts.size:
        raise ValueError(f"values ({v.size}) and timestamps_ns ({ts.size}) differ in length")
    w = np.ones(ts.size) if weights is None else _as_1d(weights, "weights").astype(float)
    if w.size != ts.size:
        raise ValueError(f"weights ({w.size}) and timestamps_ns ({ts.size}) differ in length")
    if ts.size < 2 * n_windows or int(ts.max()) <= int(ts.min()):
        return SteadyStateResult(
            False, n_windows, tolerance, math.nan, reason=f"{ts.size} timestamps are too few for {n_windows} windows"
        )
    t0, t1 = int(ts.min()), int(ts.max())
    edges = np.linspace(t0, t1, n_windows + 1)
    idx = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, n_windows - 1)
    width_s = (t1 - t0) / n_windows / 1e9
    thr = np.bincount(idx, weights=w, minlength=n_windows) / width_s
    r_thr = _ratio(thr)
    meds: tuple[float, ...] = ()
    r_med = math.nan
    stable = r_thr <= limit
    if v is not None:
        m = []
        for k in range(n_windows):
            sel = v[idx == k]
            m.append(float(np.median(sel)) if sel.size else math.nan)
        med = np.array(m)
        r_med = _ratio(med) if np.all(np.isfinite(med)) else math.inf
        meds = tuple(m)
        stable = stable and r_med <= limit
    r = max(r_thr, r_med) if v is not None else r_thr
    return SteadyStateResult(
        bool(stable), n_windows, tolerance, r, meds, tuple(map(float, thr)), median_ratio=r_med, throughput_ratio=r_thr
    )
