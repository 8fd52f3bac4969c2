"""Summaries shared by scenarios: latency percentiles with CIs, throughput, steady state."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.core import batch_means, stats
from harness.core.metrics import Metric

#: percentile definition used in every latency metric's method
_PCT_DOC = "loadgen: sorted[floor(n*q)] (clamped to n-1), the MLPerf LoadGen order statistic"


def latency_metrics(
    lat_ns: np.ndarray, headline_q: float, prefix: str = "latency", *, in_order: bool = False
) -> dict[str, Metric]:
    """Percentile metrics (ms) of ``lat_ns`` with confidence intervals for p50 and the headline.

    ``lat_ns``: integer ns, or float ns holding ``+inf`` for queries not completed by the end
    of the window (counted, not dropped: LoadGen's rule). A percentile that lands on one has
    ``value=None`` and a method saying so; mean/min/max cover completed queries only.
    ``in_order``: the latencies are in schedule order and may be autocorrelated (open loop);
    the method then always states the incomplete count, and the intervals come from batch means
    (:func:`harness.core.batch_means.quantile_ci_batch_means`), otherwise from the exact
    independent-sample bootstrap. Every percentile's ``method`` states both rules.
    """
    s = stats.summarize_latencies_ns(lat_ns, headline_q=headline_q)
    n, n_inc = int(s["count"]), int(s.get("incomplete", 0))
    out: dict[str, Metric] = {}
    cis: dict[str, Any] = dict(s.get("ci", {}))
    if in_order and n:
        ms = np.asarray(lat_ns, dtype=float) / stats.NS_PER_MS
        for q, key in ((0.5, "p50"), (headline_q, stats.percentile_key(headline_q))):
            ci = batch_means.quantile_ci_batch_means(ms, q)
            cis[key] = (ci.low, ci.high)
        ci_doc = "CI: " + batch_means.QUANTILE_CI_METHOD
    else:
        ci_doc = "CI: exact percentile bootstrap of the order statistic (independent queries)"
    counted = (
        f"; queries not completed by the end of the window count as +inf (LoadGen's rule): {n_inc} of {n}"
        if n_inc or in_order
        else ""
    )
    keys = [k for k in s if k.startswith("p") and k[1:2].isdigit()] + ["mean", "min", "max"]
    for key in keys:
        if key not in s:
            continue
        value = float(s[key])
        lo, hi = cis.get(key, (None, None))
        lo = lo if lo is None or math.isfinite(lo) else None
        hi = hi if hi is None or math.isfinite(hi) else None
        if key.startswith("p"):
            method = f"{_PCT_DOC}; {ci_doc}{counted}"
            if not math.isfinite(value):
                method = f"unavailable: {key} lands on a query not completed by the end of the window (+inf){counted}"
                out[f"{prefix}_{key}"] = Metric(value=None, unit="ms", method=method)
                continue
            if key in cis and hi is None:
                method += "; the CI's upper bound lands on an incomplete query (+inf): not given"
        else:
            method = f"completed queries only ({n - n_inc} of {n})" if n_inc else ""
        out[f"{prefix}_{key}"] = Metric(value=value, unit="ms", ci_low=lo, ci_high=hi, method=method)
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
