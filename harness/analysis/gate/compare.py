"""Performance-regression gate: compare two runs cell by cell, statistically.

Method (per cell x metric)
--------------------------
* Samples: per-query latency (``completed_ns - scheduled_ns``) or per-window throughput
  (samples completed per window of ``THROUGHPUT_WINDOW_NS``, in samples/s), so every metric
  has a distribution.
* Effect: ``ratio = statistic(current) / statistic(baseline)`` (e.g. p99 of current over p99
  of baseline).
* Confidence interval of the ratio at level ``1 - alpha``: percentile bootstrap of the log
  ratio. For quantile statistics each side's bootstrap distribution is the *exact* bootstrap
  distribution of its order statistic (:func:`harness.core.stats.order_statistic_bootstrap_cdf`),
  sampled ``n_draws`` times; other statistics resample the data. The draws are assigned to
  the two samples in a canonical order, so comparing B with A mirrors A with B exactly.
* Significance: two-sided Mann-Whitney U (:func:`scipy.stats.mannwhitneyu`), Holm-Bonferroni
  corrected across every cell x metric comparison of the gate (:func:`holm_correct`).
* Verdict: ``regression`` when the whole interval lies beyond the threshold in the bad
  direction *and* the corrected p-value is below ``alpha``; ``improvement`` symmetrically
  (the good-side bound is the reciprocal of the bad-side bound, so verdicts mirror);
  ``no change`` when the whole interval lies inside the threshold band; otherwise
  ``inconclusive``. Interference from other processes only ever slows a run down, so a current
  run that failed the steady-state check (``validity["steady_state"]``, perf_analyzer's
  max/min <= 1.10 rule) proves a regression only when the interval clears the threshold
  *times* the run's own spread between windows (and an unstable baseline likewise for an
  improvement); otherwise the verdict is ``inconclusive`` with a note.
* Minimum detectable effect (``mde``): half the width of the interval of the log ratio,
  expressed as a relative change, ``exp((log_hi - log_lo) / 2) - 1``: changes smaller than
  this cannot be told apart from no change with these samples.

The interval describes sampling noise *within* the two runs. Noise *between* runs and
machines (frequency, neighbours, placement) is covered by the threshold, which
``harness gate calibrate-noise`` measures with repeated A/A runs.

Exit codes (:data:`EXIT_PASS`, :data:`EXIT_REGRESSION`, :data:`EXIT_ERROR`): 0 pass,
1 regression (or a cell that failed in the current run only), 2 usage or data error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.core import stats
from harness.core.records import CLOSED_LOOP_SCENARIOS, query_latency_ms

EXIT_PASS = 0
EXIT_REGRESSION = 1
EXIT_ERROR = 2

#: per-window throughput samples: windows of 100 ms (shorter when the run is under 1 s)
THROUGHPUT_WINDOW_NS = 100_000_000
MIN_THROUGHPUT_WINDOWS = 10
#: closed-loop scenarios, where throughput is a property of the system (in open-loop
#: scenarios it follows the offered load)

Verdict = Literal["regression", "improvement", "no change", "inconclusive", "failed", "not applicable"]
SampleKind = Literal["latency", "throughput"]


class GateError(ValueError):
    """Usage or data error (exit code 2). The message names the file, cell or field."""


@dataclass(frozen=True)
class GateMetric:
    """A gated metric: its samples, the statistic compared and which direction is better.

    ``samples`` = ``"latency"`` (ms, per query, completed - scheduled) or ``"throughput"``
    (samples/s per window). ``statistic`` is ``"median"``, ``"mean"`` or ``"pNN"``.
    """

    name: str
    unit: str
    direction: Literal["lower", "higher"]
    statistic: str
    samples: SampleKind = "latency"
    description: str = ""

    def applies_to(self, scenario: str) -> bool:
        if self.samples == "throughput":
            return scenario in CLOSED_LOOP_SCENARIOS
        return True


#: the name the issue uses for this concept
MetricDef = GateMetric

_LAT = "latency = completed - scheduled, per query"
GATE_METRICS: dict[str, GateMetric] = {
    m.name: m
    for m in [
        GateMetric("median_latency", "ms", "lower", "median", "latency", f"median of {_LAT}"),
        GateMetric("mean_latency", "ms", "lower", "mean", "latency", f"mean of {_LAT}"),
        *[
            GateMetric(f"{p}_latency", "ms", "lower", p, "latency", f"{p} of {_LAT}")
            for p in ("p90", "p95", "p99", "p99.9")
        ],
        GateMetric(
            "throughput",
            "samples/s",
            "higher",
            "median",
            "throughput",
            "median over 100 ms windows of samples completed / window",
        ),
    ]
}
_ALIASES = {
    "p50_latency": "median_latency",
    "latency_p50": "median_latency",
    "median": "median_latency",
    "latency_mean": "mean_latency",
    "latency_p90": "p90_latency",
    "latency_p95": "p95_latency",
    "latency_p99": "p99_latency",
    "latency_p99.9": "p99.9_latency",
    "samples_per_s": "throughput",
}


def gate_metric(name: str) -> GateMetric:
    """Look up a gated metric by name (or alias); unknown names list the allowed ones."""
    key = _ALIASES.get(name, name)
    if key not in GATE_METRICS:
        raise GateError(f"unknown gate metric {name!r}; allowed: {', '.join(GATE_METRICS)}")
    return GATE_METRICS[key]


@dataclass(frozen=True)
class Rule:
    """Fail when ``metric`` gets worse by more than ``threshold`` (a fraction, e.g. 0.05)."""

    metric: GateMetric
    threshold: float

    def __str__(self) -> str:
        sign = "+" if self.metric.direction == "lower" else "-"
        return f"{self.metric.name}:{sign}{self.threshold * 100:g}%"


_RULE_RE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*:\s*([+-]?)\s*([0-9]*\.?[0-9]+)\s*%\s*$")

DEFAULT_RULES: tuple[str, ...] = ("median_latency:+5%", "p99_latency:+10%", "throughput:-5%")


def parse_rule(text: str) -> Rule:
    """``"p99_latency:+5%"`` (fail if p99 latency rises more than 5 %) or
    ``"throughput:-3%"`` (fail if throughput falls more than 3 %). The sign may be omitted;
    a sign pointing in the metric's good direction is an error."""
    m = _RULE_RE.match(text)
    if not m:
        raise GateError(
            f"cannot parse rule {text!r}; expected METRIC:+N% or METRIC:-N%, e.g. "
            f"'p99_latency:+5%' or 'throughput:-3%'; metrics: {', '.join(GATE_METRICS)}"
        )
    metric = gate_metric(m.group(1))
    sign, pct = m.group(2), float(m.group(3))
    bad = "+" if metric.direction == "lower" else "-"
    if sign and sign != bad:
        raise GateError(
            f"rule {text!r}: {metric.name} is {metric.direction}-is-better, so a regression is a "
            f"{'rise' if bad == '+' else 'fall'}; write {metric.name}:{bad}{pct:g}%"
        )
    limit = 100.0 if metric.direction == "higher" else 10_000.0
    if not (0 <= pct < limit):
        raise GateError(f"rule {text!r}: threshold must be in [0, {limit:g}) %, got {pct:g}%")
    return Rule(metric, pct / 100.0)


def parse_rules(texts: Iterable[str] | None) -> list[Rule]:
    rules = [parse_rule(t) for t in (texts or DEFAULT_RULES)]
    names = [r.metric.name for r in rules]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise GateError(f"more than one rule for {', '.join(sorted(dup))}")
    return rules


# ------------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class MetricVerdict:
    """Outcome of one comparison. ``ratio`` = current / baseline of the statistic;
    ``ci_low``/``ci_high`` its interval at ``confidence``; ``mde`` as a fraction."""

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
    """Compare two samples of ``metric``; ``p_adjusted`` defaults to the raw p-value (one
    comparison). Raises :class:`GateError` for empty samples or a non-positive statistic."""
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
        return MetricVerdict(
            metric.name,
            metric.unit,
            metric.direction,
            metric.statistic,
            threshold,
            sb,
            sc,
            math.nan,
            math.nan,
            math.nan,
            1 - alpha,
            math.nan,
            math.nan,
            math.nan,
            "inconclusive",
            b.size,
            c.size,
            cell_id,
            "statistic is zero or negative; a ratio is undefined",
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
    if d.size:
        lo, hi = np.quantile(d, [tail, 1 - tail])
    else:
        lo = hi = math.nan
    ci_low, ci_high = math.exp(lo), math.exp(hi)
    mde = math.expm1((hi - lo) / 2)
    if np.all(b == b[0]) and np.all(c == c[0]) and b[0] == c[0]:
        p = 1.0
    else:
        p = float(mannwhitneyu(c, b, alternative="two-sided").pvalue)
    padj = p if p_adjusted is None else p_adjusted
    verdict = decide(ci_low, ci_high, padj, metric.direction, threshold, alpha)
    return MetricVerdict(
        metric.name,
        metric.unit,
        metric.direction,
        metric.statistic,
        threshold,
        sb,
        sc,
        sc / sb,
        ci_low,
        ci_high,
        1 - alpha,
        p,
        padj,
        mde,
        verdict,
        int(b.size),
        int(c.size),
        cell_id,
    )


# ------------------------------------------------------------------------------- samples


def latency_samples_ms(raw: Any) -> np.ndarray:
    """Per-query latency in ms (``completed_ns - scheduled_ns``) from a raw table."""
    return query_latency_ms(raw)


def window_throughput_samples(
    completed_ns: np.ndarray, batch_size: np.ndarray | None = None, window_ns: int = THROUGHPUT_WINDOW_NS
) -> np.ndarray:
    """Samples/s in consecutive full windows of ``window_ns`` from the first completion.

    Runs shorter than ``MIN_THROUGHPUT_WINDOWS`` windows use ``duration / MIN_THROUGHPUT_WINDOWS``
    windows instead. The partial last window is dropped."""
    t = np.sort(np.asarray(completed_ns, dtype=np.int64))
    if t.size < 2:
        return np.array([], dtype=float)
    w = np.ones(t.size) if batch_size is None else np.asarray(batch_size, dtype=float)[np.argsort(completed_ns)]
    dur = int(t[-1] - t[0])
    if dur <= 0:
        return np.array([], dtype=float)
    win = min(window_ns, dur // MIN_THROUGHPUT_WINDOWS) if dur < window_ns * MIN_THROUGHPUT_WINDOWS else window_ns
    win = max(int(win), 1)
    n_full = dur // win
    if n_full < 1:
        return np.array([], dtype=float)
    idx = (t - t[0]) // win
    keep = idx < n_full
    per = np.bincount(idx[keep], weights=w[keep], minlength=n_full)
    return per / (win / 1e9)


def cell_samples(raw: Any, metric: GateMetric) -> np.ndarray:
    """Samples of ``metric``: per-query latency (ms), or throughput per 100 ms window; for an
    interleaved run (a ``block`` column) throughput per block, so that the other side's turns
    never count as this side's time."""
    if metric.samples == "latency":
        return latency_samples_ms(raw)
    if "block" in raw:
        from harness.analysis.gate.paired import block_values

        return np.asarray(list(block_values(raw, metric).values()), dtype=float)
    bs = raw["batch_size"] if "batch_size" in raw else None
    return window_throughput_samples(np.asarray(raw["completed_ns"]), None if bs is None else np.asarray(bs))


# ------------------------------------------------------------------------------- runs


@dataclass
class LoadedRun:
    """A run record with the directory its raw files live in."""

    record: Any
    path: Path
    label: str = ""

    def raw(self, cell_id: str) -> Any:
        import pandas as pd

        c = self.record.cell(cell_id)
        if not c.raw_file:
            raise GateError(f"{self.path}: cell {cell_id} has no raw per-query file (status {c.status})")
        p = self.path / c.raw_file
        if not p.exists():
            raise GateError(f"{p}: raw per-query file of cell {cell_id} is missing")
        try:
            df = pd.read_parquet(p)
        except Exception as exc:
            raise GateError(f"{p}: cannot read raw per-query file: {exc}") from None
        missing = {"scheduled_ns", "completed_ns"} - set(df.columns)
        if missing:
            raise GateError(f"{p}: missing column(s) {sorted(missing)}; have {list(df.columns)}")
        return df


def baselines_root(results_root: Path) -> Path:
    return Path(results_root) / "baselines"


def load_run_ref(ref: str | Path, results_root: Path | None = None) -> LoadedRun:
    """Load a run by directory, ``run.json`` path, run id under ``results_root``, or baseline
    name under ``results_root/baselines/``. Errors are :class:`GateError`."""
    from harness.store.results import DEFAULT_ROOT, ResultsError, load_run

    root = Path(results_root) if results_root is not None else DEFAULT_ROOT
    candidates = [Path(ref), root / str(ref), baselines_root(root) / str(ref)]
    for p in candidates:
        d = p.parent if p.name == "run.json" else p
        if (d / "run.json").exists():
            try:
                rec = load_run(d)
            except ResultsError as exc:
                raise GateError(str(exc)) from None
            return LoadedRun(rec, d, str(ref))
    raise GateError(f"no run {str(ref)!r}: looked for run.json in {', '.join(str(c) for c in candidates)}")


@dataclass
class GateReport:
    """All verdicts of one gate, plus the errors and notes that go with them."""

    baseline: str
    current: str
    rules: list[str]
    alpha: float
    verdicts: list[MetricVerdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricVerdict]:
        return [v for v in self.verdicts if v.verdict in ("regression", "failed")]

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSION if self.regressions else EXIT_PASS

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.verdicts:
            out[v.verdict] = out.get(v.verdict, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "current": self.current,
            "rules": self.rules,
            "alpha": self.alpha,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "notes": self.notes,
            "method": METHOD_SUMMARY,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


METHOD_SUMMARY = (
    "ratio = statistic(current)/statistic(baseline); CI at 1-alpha by percentile bootstrap of the log "
    "ratio (exact order-statistic bootstrap for quantiles); two-sided Mann-Whitney U with Holm-Bonferroni "
    "correction over all comparisons; regression only when the CI clears the threshold and the corrected "
    "p < alpha; mde = exp(half-width of the log-ratio CI) - 1. Interleaved A/B runs (harness gate ab) are "
    "compared block by block instead: median of the per-block log ratios, its sign-test interval and the "
    "exact sign test"
)


def _ph(cell_id: str, rule: Rule, alpha: float, verdict: Verdict, note: str) -> tuple[MetricVerdict, bool, bool]:
    return _placeholder(cell_id, rule, alpha, verdict, note), False, False


def _placeholder(cell_id: str, rule: Rule, alpha: float, verdict: Verdict, note: str) -> MetricVerdict:
    m = rule.metric
    nan = math.nan
    return MetricVerdict(
        m.name,
        m.unit,
        m.direction,
        m.statistic,
        rule.threshold,
        nan,
        nan,
        nan,
        nan,
        nan,
        1 - alpha,
        nan,
        nan,
        nan,
        verdict,
        0,
        0,
        cell_id,
        note,
    )


def compare_runs(
    baseline: LoadedRun,
    current: LoadedRun,
    rules: Sequence[Rule] | None = None,
    alpha: float = 0.01,
    *,
    allow_unmatched: bool = False,
    cells: Callable[[str], bool] | None = None,
    n_draws: int = 2000,
    seed: int = 0,
) -> GateReport:
    """Compare every cell of ``current`` with the cell of the same id in ``baseline``.

    Raises :class:`GateError` on a schema-version mismatch, or on cells present in only one
    run unless ``allow_unmatched`` (then they are listed in ``notes``).
    """
    rules = list(rules) if rules is not None else parse_rules(None)
    if not rules:
        raise GateError("no rules to check")
    br, cr = baseline.record, current.record
    if br.schema_version != cr.schema_version:
        raise GateError(
            f"schema mismatch: baseline {baseline.path} has schema_version {br.schema_version}, "
            f"current {current.path} has {cr.schema_version}"
        )
    b_ids = [c.cell_id for c in br.cells if cells is None or cells(c.cell_id)]
    c_ids = [c.cell_id for c in cr.cells if cells is None or cells(c.cell_id)]
    only_b = [i for i in b_ids if i not in set(c_ids)]
    only_c = [i for i in c_ids if i not in set(b_ids)]
    report = GateReport(
        str(baseline.label or baseline.path), str(current.label or current.path), [str(r) for r in rules], alpha
    )
    if only_b or only_c:
        msg = []
        if only_c:
            msg.append(f"cells only in current ({current.path}): {', '.join(only_c)}")
        if only_b:
            msg.append(f"cells only in baseline ({baseline.path}): {', '.join(only_b)}")
        if not allow_unmatched:
            raise GateError("unmatched cells; " + "; ".join(msg) + " (use --allow-unmatched to compare the rest)")
        report.notes.extend(msg)
    matched = [i for i in c_ids if i in set(b_ids)]
    if not matched:
        raise GateError(f"no cells in common between {baseline.path} and {current.path}")
    pending: list[tuple[MetricVerdict, bool, bool]] = []
    for cid in matched:
        bc, cc = br.cell(cid), cr.cell(cid)
        if bc.spec.model_dump(exclude={"timeout_s"}) != cc.spec.model_dump(exclude={"timeout_s"}):
            report.notes.append(f"{cid}: specs differ between runs (e.g. stop rule); compared anyway")
        if cc.status != "ok":
            # a baseline left unmeasured only because its interleaved partner (this current
            # cell) failed counts as ok here: the current side broke
            partner_only = bc.status == "skipped" and bool(bc.extra.get("partner_failed"))
            for r in rules:
                v: Verdict = "failed" if (bc.status == "ok" or partner_only) else "inconclusive"
                pending.append(_ph(cid, r, alpha, v, f"current cell {cc.status}: {cc.error or ''}".strip()))
            continue
        if bc.status != "ok":
            for r in rules:
                pending.append(_ph(cid, r, alpha, "inconclusive", f"baseline cell {bc.status}"))
            continue
        braw, craw = baseline.raw(cid), current.raw(cid)
        if _paired(bc, cc, braw, craw):
            from harness.analysis.gate.paired import compare_paired

            for r in rules:
                if not r.metric.applies_to(cc.spec.scenario):
                    pending.append(
                        _ph(
                            cid,
                            r,
                            alpha,
                            "not applicable",
                            f"{r.metric.name} is not gated for scenario {cc.spec.scenario}",
                        )
                    )
                    continue
                pending.append((compare_paired(braw, craw, r.metric, r.threshold, alpha, cid), 1.0, 1.0))
            continue
        b_unstable = _instability(bc) if bc.validity.get("steady_state") is False else 1.0
        c_unstable = _instability(cc) if cc.validity.get("steady_state") is False else 1.0
        for r in rules:
            if not r.metric.applies_to(cc.spec.scenario):
                pending.append(
                    _ph(
                        cid, r, alpha, "not applicable", f"{r.metric.name} is not gated for scenario {cc.spec.scenario}"
                    )
                )
                continue
            bs, cs = cell_samples(braw, r.metric), cell_samples(craw, r.metric)
            if bs.size < 2 or cs.size < 2:
                pending.append(
                    _ph(cid, r, alpha, "inconclusive", f"too few samples ({bs.size} baseline, {cs.size} current)")
                )
                continue
            v = compare_samples(bs, cs, r.metric, r.threshold, alpha, n_draws=n_draws, seed=seed, cell_id=cid)
            if b_unstable > 1 or c_unstable > 1:
                who = " and ".join(
                    f"{n} x{u:.3g}" for n, u in (("baseline", b_unstable), ("current", c_unstable)) if u > 1
                )
                v = replace(
                    v,
                    note=f"unstable measurement ({who} between windows): a change must exceed "
                    "the threshold and that spread",
                )
            pending.append((v, b_unstable, c_unstable))
    adj = holm_correct([v.p_value for v, _, _ in pending])
    tested = sum(math.isfinite(v.p_value) for v, _, _ in pending)
    paired_n = [v.n_baseline for v, _, _ in pending if v.note.startswith("interleaved") and math.isfinite(v.p_value)]
    if paired_n and len(paired_n) == tested and 2 * 0.5 ** max(paired_n) >= alpha / tested:
        # a test on n paired blocks cannot give p below 2 / 2**n (higher still with ties), and
        # Holm's first step needs alpha / comparisons
        report.notes.append(
            f"with at most {max(paired_n)} paired blocks the smallest possible p-value is "
            f"{2 * 0.5 ** max(paired_n):.2g}, not below alpha {alpha:g} / {tested} comparisons (Holm): "
            "no regression or improvement can be shown; measure more rounds"
        )
    for (v, b_unstable, c_unstable), pa in zip(pending, adj):
        if math.isfinite(v.p_value):
            # interference only ever slows a run down: an unstable current run proves a regression
            # only beyond its own spread, an unstable baseline an improvement likewise
            verdict = decide(
                v.ci_low,
                v.ci_high,
                float(pa),
                v.direction,
                v.threshold,
                alpha,
                regression_margin=c_unstable,
                improvement_margin=b_unstable,
            )
            v = replace(v, p_adjusted=float(pa), verdict=verdict)
        report.verdicts.append(v)
    return report


def compare_run_sets(
    baselines: Sequence[LoadedRun],
    currents: Sequence[LoadedRun],
    rules: Sequence[Rule] | None = None,
    alpha: float = 0.01,
) -> GateReport:
    """Compare repeated runs: ``baselines`` and ``currents`` each hold >= 2 runs of the same
    cells (e.g. base and head measured alternately in one CI job).

    Per cell and rule, each run contributes one value, its statistic; the effect is the ratio
    of geometric means, its interval a Welch t interval on the log values at ``1 - alpha`` and
    the test Welch's t-test, Holm-corrected across cells x metrics. Unlike
    :func:`compare_runs`, the noise *between* runs is in the interval, so the threshold need
    not absorb it. Cells must be ``ok`` in every run.
    """
    from scipy import stats as sst

    rules = list(rules) if rules is not None else parse_rules(None)
    if len(baselines) < 2 or len(currents) < 2:
        raise GateError("a run-set comparison needs at least 2 baseline and 2 current runs")
    runs = list(baselines) + list(currents)
    ids = [c.cell_id for c in runs[0].record.cells]
    for r in runs[1:]:
        if r.record.schema_version != runs[0].record.schema_version:
            raise GateError(f"schema mismatch: {r.path} has schema_version {r.record.schema_version}")
        other = [c.cell_id for c in r.record.cells]
        if set(other) != set(ids):
            raise GateError(f"{r.path}: cells differ from {runs[0].path}: {sorted(set(other) ^ set(ids))}")
    label = lambda rs: ",".join(str(r.label or r.path) for r in rs)  # noqa: E731
    report = GateReport(label(baselines), label(currents), [str(r) for r in rules], alpha)
    pending: list[MetricVerdict] = []
    for cid in ids:
        bad = [str(r.path) for r in runs if r.record.cell(cid).status != "ok"]
        if bad:
            report.notes.append(f"{cid}: not ok in {', '.join(bad)}; not compared")
            continue
        scenario = runs[0].record.cell(cid).spec.scenario
        raws = {id(r): r.raw(cid) for r in runs}
        for rule in rules:
            m = rule.metric
            if not m.applies_to(scenario):
                continue
            fn = stats.resolve_statistic(m.statistic)

            def values(rs: Sequence[LoadedRun]) -> np.ndarray:
                vals = [float(np.asarray(fn(x))) for x in (cell_samples(raws[id(r)], m) for r in rs) if x.size >= 2]
                return np.log(np.asarray([v for v in vals if v > 0]))

            lb, lc = values(baselines), values(currents)
            if lb.size < 2 or lc.size < 2:
                continue
            vb, vc = lb.var(ddof=1) / lb.size, lc.var(ddof=1) / lc.size
            se = math.sqrt(vb + vc)
            d = float(lc.mean() - lb.mean())
            if se > 0:
                den = vb**2 / (lb.size - 1) + vc**2 / (lc.size - 1)
                df = (vb + vc) ** 2 / den if den > 0 else float(lb.size + lc.size - 2)
                t = float(sst.t.ppf(1 - alpha / 2, df))
                p = float(sst.ttest_ind(lc, lb, equal_var=False).pvalue)
            else:
                t, p = 0.0, (1.0 if d == 0 else 0.0)
            pending.append(
                MetricVerdict(
                    metric=m.name,
                    unit=m.unit,
                    direction=m.direction,
                    statistic=m.statistic,
                    threshold=rule.threshold,
                    baseline_value=float(math.exp(lb.mean())),
                    current_value=float(math.exp(lc.mean())),
                    ratio=math.exp(d),
                    ci_low=math.exp(d - t * se),
                    ci_high=math.exp(d + t * se),
                    confidence=1 - alpha,
                    p_value=p,
                    p_adjusted=p,
                    mde=math.expm1(t * se),
                    verdict="inconclusive",
                    n_baseline=int(lb.size),
                    n_current=int(lc.size),
                    cell_id=cid,
                    note=f"{lb.size} vs {lc.size} runs; Welch t on log per-run {m.statistic}",
                )
            )
    adj = holm_correct([v.p_value for v in pending])
    for v, pa in zip(pending, adj):
        verdict = decide(v.ci_low, v.ci_high, float(pa), v.direction, v.threshold, alpha)
        report.verdicts.append(replace(v, p_adjusted=float(pa), verdict=verdict))
    return report


def _paired(bc: Any, cc: Any, braw: Any, craw: Any) -> bool:
    """Whether two cells were measured interleaved in one session (compared block by block)."""
    from harness.analysis.gate.paired import is_interleaved
    from harness.measure.interleave import interleaved_partners

    return interleaved_partners(bc, cc) and is_interleaved(braw) and is_interleaved(craw)


def _instability(cell: Any) -> float:
    """Spread (max/min) between the measurement windows of a cell that failed the steady-state
    check; ``inf`` when the record does not say (then it cannot prove a change at all)."""
    ss = cell.extra.get("steady_state")
    if isinstance(ss, dict) and ss.get("ratio"):
        return max(1.0, float(ss["ratio"]))
    wt = cell.extra.get("window_throughput")
    if wt and len(wt) >= 3:
        r = stats.steady_state(np.asarray(wt, dtype=float)).ratio
        if r is not None and math.isfinite(r):
            return max(1.0, float(r))
    return math.inf


# ------------------------------------------------------------------------------- outputs

_VERDICT_MARK = {
    "regression": "REGRESSION",
    "failed": "FAILED",
    "improvement": "improvement",
    "no change": "no change",
    "inconclusive": "inconclusive",
    "not applicable": "n/a",
}


def _num(v: float, digits: int = 4) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.{digits}g}"


def _pct(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v * 100:+.1f}%"


def _ci_pct(v: MetricVerdict) -> str:
    if not (math.isfinite(v.ci_low) and math.isfinite(v.ci_high)):
        return "-"
    return f"[{_pct(v.ci_low - 1)}, {_pct(v.ci_high - 1)}]"


def _rows(report: GateReport) -> list[list[str]]:
    rows = []
    for v in report.verdicts:
        thr = ("+" if v.direction == "lower" else "-") + f"{v.threshold * 100:g}%"
        rows.append(
            [
                v.cell_id,
                v.metric,
                f"{_num(v.baseline_value)} {v.unit}".strip(),
                f"{_num(v.current_value)} {v.unit}".strip(),
                _pct(v.change),
                _ci_pct(v),
                thr,
                _num(v.p_adjusted, 2),
                "-" if not math.isfinite(v.mde) else f"{v.mde * 100:.1f}%",
                _VERDICT_MARK[v.verdict] + (f" ({v.note})" if v.note else ""),
            ]
        )
    return rows


HEADERS = ["cell", "metric", "baseline", "current", "change", "CI", "threshold", "p (Holm)", "mde", "verdict"]


def _summary_line(report: GateReport) -> str:
    c = report.counts()
    parts = ", ".join(f"{n} {k}" for k, n in sorted(c.items()))
    status = "FAIL" if report.exit_code else "PASS"
    return f"{status}: {parts} (alpha {report.alpha:g}, {len(report.verdicts)} comparisons, Holm-corrected)"


def to_rich_table(report: GateReport) -> Any:
    from rich.table import Table

    t = Table(title=f"gate: {report.current} vs {report.baseline}", caption=_summary_line(report))
    for h in HEADERS:
        t.add_column(h, overflow="fold")
    style = {
        "regression": "bold red",
        "failed": "bold red",
        "improvement": "green",
        "no change": "",
        "inconclusive": "yellow",
        "not applicable": "dim",
    }
    for v, row in zip(report.verdicts, _rows(report)):
        t.add_row(*row, style=style[v.verdict] or None)
    return t


def to_markdown(report: GateReport) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [
        f"## Performance gate: {'FAIL' if report.exit_code else 'PASS'}",
        "",
        f"Current `{report.current}` vs baseline `{report.baseline}`. Rules: "
        + ", ".join(f"`{r}`" for r in report.rules)
        + ".",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for row in _rows(report):
        lines.append("| " + " | ".join(esc(x) for x in row) + " |")
    lines += ["", _summary_line(report), ""]
    for n in report.notes:
        lines.append(f"- {esc(n)}")
    lines += ["", f"<sub>Method: {METHOD_SUMMARY}.</sub>", ""]
    return "\n".join(lines)


def to_json(report: GateReport) -> str:
    import json

    return json.dumps(report.to_dict(), indent=1)


def to_junit_xml(report: GateReport) -> str:
    """JUnit XML: one testcase per cell x metric; regressions are failures, inconclusive and
    not-applicable comparisons are skipped with the reason."""
    import xml.etree.ElementTree as ET

    n_fail = len(report.regressions)
    n_skip = sum(v.verdict in ("inconclusive", "not applicable") for v in report.verdicts)
    suite = ET.Element(
        "testsuite",
        name="harness-gate",
        tests=str(len(report.verdicts)),
        failures=str(n_fail),
        errors="0",
        skipped=str(n_skip),
    )
    props = ET.SubElement(suite, "properties")
    for k, val in (
        ("baseline", report.baseline),
        ("current", report.current),
        ("alpha", str(report.alpha)),
        ("rules", ", ".join(report.rules)),
    ):
        ET.SubElement(props, "property", name=k, value=val)
    for v, row in zip(report.verdicts, _rows(report)):
        tc = ET.SubElement(suite, "testcase", classname=v.cell_id or "cell", name=v.metric, time="0")
        text = (
            f"{v.metric}: {row[2]} -> {row[3]} ({row[4]}, CI {row[5]}, threshold {row[6]}, "
            f"p(Holm) {row[7]}, mde {row[8]}) {v.note}"
        ).strip()
        if v.verdict in ("regression", "failed"):
            ET.SubElement(tc, "failure", message=f"{v.verdict}: {v.metric} {row[4]}", type=v.verdict).text = text
        elif v.verdict in ("inconclusive", "not applicable"):
            ET.SubElement(tc, "skipped", message=f"{v.verdict}: {v.note or text}")
        ET.SubElement(tc, "system-out").text = text
    root = ET.Element(
        "testsuites", name="harness-gate", tests=suite.get("tests", "0"), failures=str(n_fail), errors="0"
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


FORMATS = ("table", "markdown", "json", "junit")


def render(report: GateReport, fmt: str) -> str:
    """Render as ``markdown``, ``json`` or ``junit`` text (``table`` is printed by rich)."""
    if fmt == "markdown":
        return to_markdown(report)
    if fmt == "json":
        return to_json(report)
    if fmt == "junit":
        return to_junit_xml(report)
    if fmt == "table":
        import io

        from rich.console import Console

        con = Console(width=200, file=io.StringIO(), color_system=None)
        con.print(to_rich_table(report))
        return con.file.getvalue()  # type: ignore[attr-defined]
    raise GateError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")


# ------------------------------------------------------------------------------- noise


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


def noise_from_runs(
    runs: Sequence[LoadedRun],
    metrics: Sequence[GateMetric],
    false_alarm_rate: float = 0.01,
    alpha: float = 0.01,
) -> list[NoiseRow]:
    """Per cell x metric noise over ``runs`` of the same cells (see :class:`NoiseRow`)."""
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
        raws = [r.raw(cid) for r in present]
        scenario = present[0].record.cell(cid).spec.scenario
        for m in metrics:
            if not m.applies_to(scenario):
                continue
            samples = [cell_samples(raw, m) for raw in raws]
            samples = [s for s in samples if s.size >= 2]
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
            thr = max(aa, math.expm1(z * math.sqrt(2) * sd))
            thr = math.ceil(thr * 200) / 200  # round up to 0.5 %
            fa = sum(
                compare_samples(samples[i], samples[j], m, thr, alpha, n_draws=1000).verdict == "regression"
                or compare_samples(samples[j], samples[i], m, thr, alpha, n_draws=1000).verdict == "regression"
                for i, j in pair_idx
            )
            rows.append(
                NoiseRow(
                    cid,
                    m.name,
                    len(st),
                    float(np.mean(st)),
                    float(np.std(st, ddof=1) / np.mean(st)),
                    aa,
                    thr,
                    int(fa),
                    len(pair_idx) * 2,
                )
            )
    return rows
