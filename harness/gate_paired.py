"""Paired comparison of two interleaved runs, block by block (see :mod:`harness.interleave`).

For each round ``k`` in which both runs measured a block, the metric's statistic is taken
within the block (e.g. the median latency of its queries; for throughput the block's samples
divided by its duration) and ``d_k = log(current_k / baseline_k)``. A drift of the host hits
both blocks of a round alike and cancels in ``d_k``. A block that one variant spent in a
burst of interference (on a shared VM: 40-80 % slower for tens of ms, a few blocks in
twenty) is an outlier among the ``d_k``; the methods below rest on ranks and order
statistics (50 % breakdown point), so such blocks move the interval only when more than
about ``k`` of them fall on one side.

* effect: the median of the ``d_k``, reported as the ratio ``exp(median)``;
* interval: the distribution-free sign-test interval of that median, order statistics
  ``[d_(k), d_(n-k+1)]`` with ``k`` from the Binomial(n, 1/2) quantile at ``alpha / 2``;
* test: two-sided exact sign test (binomial) of ``median d = 0``, zero differences dropped;
* median latency only: rounds whose ``d_k`` lies beyond ``log(BURST_RATIO)`` of the median
  ``d`` are bursts that hit one side and are left out (counted in the note) when at least
  half the rounds remain. The window is centred on the median, so a real change of any size
  keeps its rounds; tail metrics and throughput keep every round, so intermittent stalls
  introduced by one side still fail them.

The verdict rule is the gate's usual one (:func:`harness.gate.decide`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness import stats

#: median latency only: a round whose paired ratio lies beyond this factor of the median
#: ratio is a burst of interference that hit one side's block (on the CI VM: 1.4-2x), not the
#: typical query the metric is about; it is left out and counted. Tail metrics and
#: throughput keep every round, so intermittent stalls of one side still show there.
BURST_RATIO = 1.2
MIN_BLOCKS = 9  # below this a 99 % sign-test interval is (nearly) the whole range of the blocks


def sign_rank_k(n: int, alpha: float) -> int:
    """Order statistic index ``k`` (1-based) such that ``[d_(k), d_(n-k+1)]`` covers the median
    of ``n`` paired values with probability >= ``1 - alpha`` (binomial sign-test interval);
    0 when ``n`` is too small for that confidence."""
    from scipy.stats import binom

    if n < 1:
        return 0
    # largest k with P(X <= k - 1) <= alpha / 2, X ~ Binomial(n, 1/2)
    k = int(binom.ppf(alpha / 2, n, 0.5))
    while k >= 1 and binom.cdf(k - 1, n, 0.5) > alpha / 2:
        k -= 1
    while binom.cdf(k, n, 0.5) <= alpha / 2:
        k += 1
    return k


def median_interval(d: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """(median, low, high) of ``d`` at ``1 - alpha`` by the sign-test interval; the bounds are
    infinite when there are too few values for that confidence."""
    s = np.sort(np.asarray(d, dtype=float))
    est = float(np.median(s))
    k = sign_rank_k(s.size, alpha)
    if k < 1:
        return est, -math.inf, math.inf
    return est, float(s[k - 1]), float(s[s.size - k])


def block_values(raw: Any, metric: Any) -> dict[int, float]:
    """Per-block value of ``metric`` (a :class:`harness.gate.GateMetric`) from an interleaved
    raw table: {round: statistic}."""
    block = np.asarray(raw["block"], dtype=np.int64)
    start = np.asarray(raw["scheduled_ns"], dtype=np.int64)
    end = np.asarray(raw["completed_ns"], dtype=np.int64)
    bs = np.asarray(raw["batch_size"], dtype=float) if "batch_size" in raw else np.ones(block.size)
    out: dict[int, float] = {}
    fn = stats.resolve_statistic(metric.statistic)
    for k in np.unique(block):
        m = block == k
        if metric.samples == "throughput":
            dur = int(end[m].max() - start[m].min())
            if dur > 0:
                out[int(k)] = float(bs[m].sum() / (dur / 1e9))
        elif m.sum() >= 1:
            out[int(k)] = float(np.asarray(fn((end[m] - start[m]) / 1e6)))
    return out


def pooled_value(raw: Any, metric: Any) -> float:
    """The metric over all blocks together: the statistic of every query's latency (ms), or
    for throughput the samples over the summed block durations (the gaps while other variants
    ran are not counted)."""
    start = np.asarray(raw["scheduled_ns"], dtype=np.int64)
    end = np.asarray(raw["completed_ns"], dtype=np.int64)
    if start.size == 0:
        return math.nan
    if metric.samples != "throughput":
        return float(np.asarray(stats.resolve_statistic(metric.statistic)((end - start) / 1e6)))
    block = np.asarray(raw["block"], dtype=np.int64)
    bs = np.asarray(raw["batch_size"], dtype=float) if "batch_size" in raw else np.ones(block.size)
    dur = sum(int(end[block == k].max() - start[block == k].min()) for k in np.unique(block))
    return float(bs.sum() / (dur / 1e9)) if dur > 0 else math.nan


def is_interleaved(raw: Any) -> bool:
    return "block" in raw


def paired_log_ratios(braw: Any, craw: Any, metric: Any) -> np.ndarray:
    """``log(current_k / baseline_k)`` over the rounds both runs measured with positive values."""
    b, c = block_values(braw, metric), block_values(craw, metric)
    keys = sorted(k for k in set(b) & set(c) if b[k] > 0 and c[k] > 0)
    return np.array([math.log(c[k] / b[k]) for k in keys], dtype=float)


def compare_paired(braw: Any, craw: Any, metric: Any, threshold: float, alpha: float = 0.01,
                   cell_id: str = "") -> Any:
    """:class:`harness.gate.MetricVerdict` of an interleaved pair (``p_adjusted`` = raw p;
    the caller corrects across comparisons)."""
    from scipy.stats import binomtest

    from harness.gate import MetricVerdict, decide

    d = paired_log_ratios(braw, craw, metric)
    sb, sc = pooled_value(braw, metric), pooled_value(craw, metric)
    what = "samples / block time" if metric.samples == "throughput" else f"block {metric.statistic}"
    note = (f"interleaved: {d.size} paired blocks; median of per-block log ratios ({what}), sign test; "
            "interval conditional on these worker processes")
    fn = stats.resolve_statistic(metric.statistic)
    if metric.samples == "latency" and isinstance(fn, stats.QuantileStat):
        per_block = int(min(np.median(np.bincount(np.asarray(r["block"], dtype=np.int64))[
            np.unique(np.asarray(r["block"], dtype=np.int64))]) for r in (braw, craw)))
        if per_block * (1 - fn.q) < 2:
            note += (f"; blocks hold ~{per_block} queries, so the block {metric.statistic} is close to "
                     "the block maximum: raise --block-ms for a tail estimate")
    if metric.samples == "latency" and metric.statistic == "median" and d.size >= MIN_BLOCKS:
        keep = np.abs(d - np.median(d)) <= math.log(BURST_RATIO)
        if keep.sum() >= max(MIN_BLOCKS, d.size // 2) and not keep.all():
            note += (f"; {int(d.size - keep.sum())} of {d.size} rounds left out as bursts (paired ratio "
                     f"beyond x{BURST_RATIO:g} of the median ratio)")
            d = d[keep]
    if d.size < MIN_BLOCKS:
        return MetricVerdict(metric.name, metric.unit, metric.direction, metric.statistic, threshold,
                             sb, sc, math.nan, math.nan, math.nan, 1 - alpha, math.nan, math.nan, math.nan,
                             "inconclusive", d.size, d.size, cell_id,
                             f"too few paired blocks ({d.size} < {MIN_BLOCKS})")
    est, lo, hi = median_interval(d, alpha)
    pos, neg = int(np.sum(d > 0)), int(np.sum(d < 0))
    p = float(binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else 1.0
    ci_low, ci_high = math.exp(lo), math.exp(hi)
    mde = math.expm1((hi - lo) / 2) if math.isfinite(hi - lo) else math.inf
    verdict = decide(ci_low, ci_high, p, metric.direction, threshold, alpha)
    return MetricVerdict(metric.name, metric.unit, metric.direction, metric.statistic, threshold,
                         sb, sc, math.exp(est), ci_low, ci_high, 1 - alpha, p, p, mde, verdict,
                         int(d.size), int(d.size), cell_id, note)


def noise_from_ab_reports(reports: list[Any], false_alarm_rate: float = 0.01) -> list[Any]:
    """Noise rows (:class:`harness.gate.NoiseRow`) from interleaved A/A comparisons (both
    sides the same code): per cell x metric, the spread of the estimated change. The
    suggested threshold is the larger of the biggest A/A change seen and
    ``exp(z(1 - rate/2) * sd_log) - 1`` (each A/A change is already a difference of two
    sides, hence no ``sqrt(2)``); ``false_alarms`` counts comparisons whose verdict was
    regression or improvement (either is a false alarm between identical sides)."""
    from scipy.stats import norm

    from harness.gate import GateError, NoiseRow

    if len(reports) < 2:
        raise GateError("interleaved noise calibration needs at least 2 A/A sessions")
    z = float(norm.ppf(1 - false_alarm_rate / 2))
    acc: dict[tuple[str, str], list[Any]] = {}
    for rep in reports:
        for v in rep.verdicts:
            if math.isfinite(v.ratio) and v.ratio > 0:
                acc.setdefault((v.cell_id, v.metric), []).append(v)
    rows = []
    for (cid, metric), vs in acc.items():
        logs = np.log([v.ratio for v in vs])
        sd = float(np.std(logs, ddof=1)) if logs.size >= 2 else math.nan
        mx = float(np.max(np.abs(np.expm1(logs))))
        thr = max(mx, math.expm1(z * sd)) if math.isfinite(sd) else mx
        vals = [v.baseline_value for v in vs if math.isfinite(v.baseline_value)]
        mean = float(np.mean(vals)) if vals else math.nan
        cv = float(np.std(vals, ddof=1) / mean) if len(vals) >= 2 and mean else math.nan
        rows.append(NoiseRow(cid, metric, len(vs), mean, cv, mx, math.ceil(thr * 200) / 200,
                             sum(v.verdict in ("regression", "improvement") for v in vs), len(vs)))
    return rows
