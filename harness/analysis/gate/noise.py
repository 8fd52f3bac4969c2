"""Noise calibration: how much a metric moves between identical runs (A/A), and the threshold
that keeps false alarms near a target rate.

* :func:`noise_from_runs`: repeated identical runs, compared pairwise as independent samples;
* :func:`noise_from_ab_reports`: interleaved A/A sessions (``harness gate ab`` with both sides
  the same code), from their gate reports.

Thresholds are rounded up to 0.5 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.analysis.gate.compare import GateReport
from harness.analysis.gate.rules import GateError, GateMetric
from harness.analysis.gate.samples import cell_samples, read_raw
from harness.analysis.gate.verdicts import MetricVerdict, compare_samples
from harness.core import stats
from harness.store.refs import LoadedRun


@dataclass(frozen=True)
class NoiseRow:
    """Run-to-run noise of one cell x metric over repeated identical runs (A/A).

    ``cv``: coefficient of variation of the per-run statistic; ``aa_max_change``: largest
    ``|ratio - 1|`` over all pairs of runs; ``suggested_threshold``: the larger of the
    observed A/A spread and a normal model of the log statistic,
    ``exp(z(1 - rate/2) * sqrt(2) * sd_log) - 1``, so that an A/A pair exceeds it with
    probability about ``rate``; ``false_alarms``: pairs the gate would fail at that
    threshold (before the correction for many comparisons)."""

    cell_id: str
    metric: str
    n_runs: int
    mean_statistic: float
    cv: float
    aa_max_change: float
    suggested_threshold: float
    false_alarms: int
    pairs: int


def _round_up(threshold: float) -> float:
    return math.ceil(threshold * 200) / 200


def noise_from_runs(
    runs: Sequence[LoadedRun],
    metrics: Sequence[GateMetric],
    false_alarm_rate: float = 0.01,
    alpha: float = 0.01,
) -> list[NoiseRow]:
    """Per cell x metric noise over ``runs`` of the same cells (see :class:`NoiseRow`)."""
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy.stats import norm

    if len(runs) < 2:
        raise GateError("noise calibration needs at least 2 runs of the same cells")
    if not (0 < false_alarm_rate < 1):
        raise GateError(f"false-alarm rate must be in (0, 1), got {false_alarm_rate}")
    ids = [c.cell_id for c in runs[0].record.cells if c.status == "ok"]
    rows: list[NoiseRow] = []
    z = float(norm.ppf(1 - false_alarm_rate / 2))
    for cid in ids:
        present = [r for r in runs if any(c.cell_id == cid and c.status == "ok" for c in r.record.cells)]
        if len(present) < 2:
            continue
        raws = [read_raw(r, cid) for r in present]
        scenario = present[0].record.cell(cid).spec.scenario
        for m in metrics:
            if not m.applies_to(scenario):
                continue
            samples = [s for s in (cell_samples(raw, m) for raw in raws) if s.size >= 2]
            if len(samples) < 2:
                continue
            fn = stats.resolve_statistic(m.statistic)
            st = np.array([float(np.asarray(fn(s))) for s in samples])
            if np.any(st <= 0):
                continue
            logs = np.log(st)
            sd = float(np.std(logs, ddof=1))
            pair_idx = [(i, j) for i in range(len(st)) for j in range(i + 1, len(st))]
            aa = max(abs(math.expm1(logs[j] - logs[i])) for i, j in pair_idx)
            thr = _round_up(max(aa, math.expm1(z * math.sqrt(2) * sd)))
            fa = sum(
                compare_samples(samples[i], samples[j], m, thr, alpha, n_draws=1000).verdict == "regression"
                or compare_samples(samples[j], samples[i], m, thr, alpha, n_draws=1000).verdict == "regression"
                for i, j in pair_idx
            )
            rows.append(
                NoiseRow(
                    cell_id=cid,
                    metric=m.name,
                    n_runs=len(st),
                    mean_statistic=float(np.mean(st)),
                    cv=float(np.std(st, ddof=1) / np.mean(st)),
                    aa_max_change=aa,
                    suggested_threshold=thr,
                    false_alarms=int(fa),
                    pairs=len(pair_idx) * 2,
                )
            )
    return rows


def noise_from_ab_reports(reports: Sequence[GateReport], false_alarm_rate: float = 0.01) -> list[NoiseRow]:
    """Noise rows from interleaved A/A comparisons (both sides the same code): per cell x
    metric, the spread of the estimated change. The suggested threshold is the larger of the
    biggest A/A change seen and ``exp(z(1 - rate/2) * sd_log) - 1`` (each A/A change is
    already a difference of two sides, hence no ``sqrt(2)``); ``false_alarms`` counts
    comparisons whose verdict was regression or improvement (either is a false alarm between
    identical sides)."""
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy.stats import norm

    if len(reports) < 2:
        raise GateError("interleaved noise calibration needs at least 2 A/A sessions")
    z = float(norm.ppf(1 - false_alarm_rate / 2))
    acc: dict[str, dict[str, list[MetricVerdict]]] = {}
    for rep in reports:
        for v in rep.verdicts:
            if math.isfinite(v.ratio) and v.ratio > 0:
                acc.setdefault(v.cell_id, {}).setdefault(v.metric, []).append(v)
    rows = []
    for cid, by_metric in acc.items():
        for metric, vs in by_metric.items():
            logs = np.log([v.ratio for v in vs])
            sd = float(np.std(logs, ddof=1)) if logs.size >= 2 else math.nan
            mx = float(np.max(np.abs(np.expm1(logs))))
            thr = max(mx, math.expm1(z * sd)) if math.isfinite(sd) else mx
            vals = [v.baseline_value for v in vs if math.isfinite(v.baseline_value)]
            mean = float(np.mean(vals)) if vals else math.nan
            cv = float(np.std(vals, ddof=1) / mean) if len(vals) >= 2 and mean else math.nan
            rows.append(
                NoiseRow(
                    cell_id=cid,
                    metric=metric,
                    n_runs=len(vs),
                    mean_statistic=mean,
                    cv=cv,
                    aa_max_change=mx,
                    suggested_threshold=_round_up(thr),
                    false_alarms=sum(v.verdict in ("regression", "improvement") for v in vs),
                    pairs=len(vs),
                )
            )
    return rows
