"""Summaries shared by scenarios: latency percentiles with CIs, throughput, steady state."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.core import stats
from harness.core.metrics import Metric


def latency_metrics(lat_ns: np.ndarray, headline_q: float, prefix: str = "latency") -> dict[str, Metric]:
    """Percentile metrics (ms) of ``lat_ns`` with bootstrap CIs for p50 and the headline."""
    s = stats.summarize_latencies_ns(lat_ns, headline_q=headline_q)
    out: dict[str, Metric] = {}
    method = s.get("method", stats.PERCENTILE_METHOD_DOC)
    cis: dict[str, Any] = s.get("ci", {})
    keys = [k for k in s if k.startswith("p") and k[1:2].isdigit()] + ["mean", "min", "max"]
    for key in keys:
        if key not in s:
            continue
        lo, hi = cis.get(key, (None, None))
        out[f"{prefix}_{key}"] = Metric(
            value=s[key],
            unit="ms",
            ci_low=lo,
            ci_high=hi,
            method=method if key.startswith("p") else "",
        )
    return out


def window_throughput(completed_ns: np.ndarray, samples: np.ndarray, n_windows: int = 10) -> np.ndarray:
    """Samples/s in ``n_windows`` equal time windows over the completions (for steady-state
    checks and for the regression gate, which needs a distribution of throughput)."""
    if completed_ns.size < 2:
        return np.array([], dtype=float)
    t0, t1 = int(completed_ns.min()), int(completed_ns.max())
    if t1 <= t0:
        return np.array([], dtype=float)
    edges = np.linspace(t0, t1, n_windows + 1)
    idx = np.clip(np.searchsorted(edges, completed_ns, side="right") - 1, 0, n_windows - 1)
    per = np.bincount(idx, weights=samples.astype(float), minlength=n_windows)
    width_s = (t1 - t0) / n_windows / 1e9
    return per / width_s
