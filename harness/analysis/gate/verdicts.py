"""Verdicts: the outcome of one cell x metric comparison, and how it is decided.

Every :class:`MetricVerdict` is built here: :func:`measured_verdict` (an interval and a test),
:func:`unmeasured_verdict` (no comparison possible: a failed cell, too few samples, a metric
not gated for the scenario), :func:`corrected` (after the Holm correction) and
:func:`with_note`.

Comparison of two independent samples (:func:`compare_samples`)
----------------------------------------------------------------
* Effect: ``ratio = statistic(current) / statistic(baseline)`` (e.g. p99 of current over p99
  of baseline).
* Confidence interval of the ratio at level ``1 - alpha``: percentile bootstrap of the log
  ratio. For quantile statistics each side's bootstrap distribution is the *exact* bootstrap
  distribution of its order statistic (:func:`harness.core.stats.order_statistic_bootstrap_cdf`),
  sampled ``n_draws`` times; other statistics resample the data. The draws are assigned to
  the two samples in a canonical order, so comparing B with A mirrors A with B exactly.
* Significance: two-sided Mann-Whitney U (:func:`scipy.stats.mannwhitneyu`), Holm-Bonferroni
  corrected across every cell x metric comparison of the gate (:func:`holm_correct`).
* Minimum detectable effect (``mde``): half the width of the interval of the log ratio,
  expressed as a relative change, ``exp((log_hi - log_lo) / 2) - 1``: changes smaller than
  this cannot be told apart from no change with these samples.

Verdict (:func:`decide`): ``regression`` when the whole interval lies beyond the threshold in
the bad direction *and* the corrected p-value is below ``alpha``; ``improvement``
symmetrically (the good-side bound is the reciprocal of the bad-side bound, so verdicts
mirror); ``no change`` when the whole interval lies inside the threshold band; otherwise
``inconclusive``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from harness.analysis.gate.rules import GateError, GateMetric
from harness.core import stats

Verdict = Literal["regression", "improvement", "no change", "inconclusive", "failed", "not applicable"]


@dataclass(frozen=True)
class MetricVerdict:
    """Outcome of one comparison. ``ratio`` = current / baseline of the statistic;
    ``ci_low``/``ci_high`` its interval at ``confidence``; ``mde`` as a fraction. Values are in
    ``unit``; NaN where not computed (``to_dict`` writes them as null)."""

    metric: str
    unit: str
    direction: str
    statistic: str
    threshold: float
    baseline_value: float
    current_value: float
    ratio: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    p_adjusted: float
    mde: float
    verdict: Verdict
    n_baseline: int
    n_current: int
    cell_id: str = ""
    note: str = ""

    @property
    def change(self) -> float:
        """Relative change of the statistic, current vs baseline (0.05 = +5 %)."""
        return self.ratio - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def holm_correct(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (same order as the input, capped at 1).

    Reject hypothesis i at family-wise level ``alpha`` iff ``adjusted[i] < alpha``. NaN
    p-values are left NaN and do not count towards the family size.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def _bad_bound(direction: str, threshold: float) -> float:
    """Log ratio beyond which a change is a regression (positive for lower-is-better)."""
    if direction == "lower":
        return math.log1p(threshold)
    return -math.log1p(-threshold) if threshold < 1 else math.inf


def decide(
    ci_low: float,
    ci_high: float,
    p_adjusted: float,
    direction: str,
    threshold: float,
    alpha: float,
    regression_margin: float = 1.0,
    improvement_margin: float = 1.0,
) -> Verdict:
    """Verdict from the ratio interval and the corrected p-value (see module doc).

    ``regression_margin`` / ``improvement_margin`` (ratios >= 1) widen the bound a regression /
    an improvement must clear: an unstable run whose windows differ by a factor ``r`` can only
    prove a change larger than the threshold *and* ``r`` (``inf`` = cannot prove it at all)."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)) or ci_low <= 0:
        return "inconclusive"
    lo, hi = math.log(ci_low), math.log(ci_high)
    b = _bad_bound(direction, threshold)  # > 0
    # orient so that positive log ratio = worse
    worse_lo, worse_hi = (lo, hi) if direction == "lower" else (-hi, -lo)
    significant = math.isfinite(p_adjusted) and p_adjusted < alpha
    if worse_lo > b and significant:
        return "regression" if worse_lo > b + math.log(regression_margin) else "inconclusive"
    if worse_hi < -b and significant:
        return "improvement" if worse_hi < -b - math.log(improvement_margin) else "inconclusive"
    if -b <= worse_lo and worse_hi <= b:
        return "no change"
    return "inconclusive"


def measured_verdict(
    metric: GateMetric,
    threshold: float,
    alpha: float,
    *,
    baseline_value: float,
    current_value: float,
    ratio: float,
    log_low: float,
    log_high: float,
    p_value: float,
    n_baseline: int,
    n_current: int,
    cell_id: str = "",
    note: str = "",
    p_adjusted: float | None = None,
    mde: float | None = None,
) -> MetricVerdict:
    """A comparison with an interval ``[log_low, log_high]`` of the log ratio at ``1 - alpha``
    and a test's ``p_value``; the verdict is decided on ``p_adjusted`` (default: the raw p,
    one comparison). ``mde`` defaults to ``exp(half-width) - 1`` (``inf`` for an unbounded
    or undefined interval)."""
    ci_low, ci_high = math.exp(log_low), math.exp(log_high)
    if mde is None:
        width = log_high - log_low
        mde = math.expm1(width / 2) if math.isfinite(width) else math.inf
    padj = p_value if p_adjusted is None else p_adjusted
    return MetricVerdict(
        metric=metric.name,
        unit=metric.unit,
        direction=metric.direction,
        statistic=metric.statistic,
        threshold=threshold,
        baseline_value=baseline_value,
        current_value=current_value,
        ratio=ratio,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=1 - alpha,
        p_value=p_value,
        p_adjusted=padj,
        mde=mde,
        verdict=decide(ci_low, ci_high, padj, metric.direction, threshold, alpha),
        n_baseline=n_baseline,
        n_current=n_current,
        cell_id=cell_id,
        note=note,
    )


def unmeasured_verdict(
    metric: GateMetric,
    threshold: float,
    alpha: float,
    verdict: Verdict,
    note: str,
    *,
    cell_id: str = "",
    baseline_value: float = math.nan,
    current_value: float = math.nan,
    n_baseline: int = 0,
    n_current: int = 0,
) -> MetricVerdict:
    """A verdict without an interval or a test (ratio, interval, p-values and mde are NaN)."""
    nan = math.nan
    return MetricVerdict(
        metric=metric.name,
        unit=metric.unit,
        direction=metric.direction,
        statistic=metric.statistic,
        threshold=threshold,
        baseline_value=baseline_value,
        current_value=current_value,
        ratio=nan,
        ci_low=nan,
        ci_high=nan,
        confidence=1 - alpha,
        p_value=nan,
        p_adjusted=nan,
        mde=nan,
        verdict=verdict,
        n_baseline=n_baseline,
        n_current=n_current,
        cell_id=cell_id,
        note=note,
    )


def corrected(
    v: MetricVerdict,
    p_adjusted: float,
    alpha: float,
    regression_margin: float = 1.0,
    improvement_margin: float = 1.0,
) -> MetricVerdict:
    """``v`` with its corrected p-value and the verdict decided again on it (margins: see :func:`decide`)."""
    verdict = decide(
        v.ci_low,
        v.ci_high,
        p_adjusted,
        v.direction,
        v.threshold,
        alpha,
        regression_margin=regression_margin,
        improvement_margin=improvement_margin,
    )
    return replace(v, p_adjusted=p_adjusted, verdict=verdict)


def with_note(v: MetricVerdict, note: str) -> MetricVerdict:
    """``v`` with ``note`` in place of its note."""
    return replace(v, note=note)


# ------------------------------------------------------------------------------- independent samples


def _canonical_first(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` draws its bootstrap replicates first (a total order on samples, so
    swapping the arguments swaps the draws too)."""
    ka = (a.size, float(np.sum(a)), float(np.sum(a * a)), a.tobytes())
    kb = (b.size, float(np.sum(b)), float(np.sum(b * b)), b.tobytes())
    return ka <= kb


def _draws(x: np.ndarray, statistic: str, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    fn = stats.resolve_statistic(statistic)
    if isinstance(fn, stats.QuantileStat):
        s = np.sort(x)
        k = stats.percentile_index(s.size, fn.q, fn.method) if fn.method != "linear" else int(fn.q * (s.size - 1))
        return stats.sample_order_statistic(s, k, n_draws, rng)
    out = np.empty(n_draws)
    chunk = max(1, 5_000_000 // max(x.size, 1))
    for i in range(0, n_draws, chunk):
        j = min(n_draws, i + chunk)
        out[i:j] = fn(x[rng.integers(0, x.size, (j - i, x.size))], axis=-1)
    return out


def compare_samples(
    baseline: np.ndarray,
    current: np.ndarray,
    metric: GateMetric,
    threshold: float,
    alpha: float = 0.01,
    *,
    n_draws: int = 2000,
    seed: int = 0,
    p_adjusted: float | None = None,
    cell_id: str = "",
) -> MetricVerdict:
    """Compare two independent samples of ``metric`` (module doc); ``p_adjusted`` defaults
    to the raw p-value (one comparison). Raises :class:`GateError` for empty samples or an
    ``alpha`` outside (0, 1); a non-positive statistic gives an ``inconclusive`` verdict."""
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy.stats import mannwhitneyu

    b = np.asarray(baseline, dtype=float)
    c = np.asarray(current, dtype=float)
    if b.ndim != 1 or c.ndim != 1 or b.size == 0 or c.size == 0:
        raise GateError(
            f"{cell_id or 'comparison'} {metric.name}: need two non-empty 1-D samples "
            f"(got {b.size} baseline, {c.size} current)"
        )
    if not (0 < alpha < 1):
        raise GateError(f"alpha must be in (0, 1), got {alpha}")
    fn = stats.resolve_statistic(metric.statistic)
    sb, sc = float(np.asarray(fn(b))), float(np.asarray(fn(c)))
    if sb <= 0 or sc <= 0:
        return unmeasured_verdict(
            metric,
            threshold,
            alpha,
            "inconclusive",
            "statistic is zero or negative; a ratio is undefined",
            cell_id=cell_id,
            baseline_value=sb,
            current_value=sc,
            n_baseline=b.size,
            n_current=c.size,
        )
    rng = np.random.default_rng(seed)
    if _canonical_first(b, c):
        db = _draws(b, metric.statistic, n_draws, rng)
        dc = _draws(c, metric.statistic, n_draws, rng)
    else:
        dc = _draws(c, metric.statistic, n_draws, rng)
        db = _draws(b, metric.statistic, n_draws, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(dc) - np.log(db)
    d = d[np.isfinite(d)]
    tail = alpha / 2
    lo, hi = (float(x) for x in np.quantile(d, [tail, 1 - tail])) if d.size else (math.nan, math.nan)
    if np.all(b == b[0]) and np.all(c == c[0]) and b[0] == c[0]:
        p = 1.0
    else:
        p = float(mannwhitneyu(c, b, alternative="two-sided").pvalue)
    return measured_verdict(
        metric,
        threshold,
        alpha,
        baseline_value=sb,
        current_value=sc,
        ratio=sc / sb,
        log_low=lo,
        log_high=hi,
        p_value=p,
        p_adjusted=p_adjusted,
        n_baseline=int(b.size),
        n_current=int(c.size),
        cell_id=cell_id,
    )
