"""Performance-regression gate: compare two runs cell by cell, statistically.

Per cell x rule (:mod:`harness.analysis.gate.rules`) the gate takes the metric's samples
(:mod:`harness.analysis.gate.samples`) from both runs and compares them:

* two independent runs: bootstrap interval of the ratio and Mann-Whitney U
  (:func:`harness.analysis.gate.verdicts.compare_samples`);
* two runs measured interleaved in one session: block by block
  (:mod:`harness.analysis.gate.paired`);
* repeated runs on each side (:func:`compare_run_sets`): Welch t on the per-run statistics.

p-values are Holm-Bonferroni corrected across every comparison of the gate, and the verdict
needs both a corrected p below ``alpha`` and an interval clear of the threshold
(:func:`harness.analysis.gate.verdicts.decide`). Interference from other processes only ever
slows a run down, so a current run that failed the steady-state check
(``validity["steady_state"]``, perf_analyzer's max/min <= 1.10 rule) proves a regression only
when the interval clears the threshold *times* the run's own spread between windows (and an
unstable baseline likewise for an improvement); otherwise the verdict is ``inconclusive``.

The interval describes sampling noise *within* the two runs. Noise *between* runs and
machines (frequency, neighbours, placement) is covered by the threshold, which
``harness gate calibrate-noise`` measures with repeated A/A runs (:mod:`harness.analysis.gate.noise`).

Cells are paired by id, or by legacy id for baselines written before the stop rule was part
of cell ids (:mod:`harness.analysis.gate.matching`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from harness.analysis.gate.matching import CellPair, match_cells, same_spec
from harness.analysis.gate.paired import compare_paired
from harness.analysis.gate.rules import EXIT_PASS, EXIT_REGRESSION, GateError, Rule, parse_rules
from harness.analysis.gate.samples import cell_samples, is_interleaved, read_raw
from harness.analysis.gate.verdicts import (
    MetricVerdict,
    Verdict,
    compare_samples,
    corrected,
    holm_correct,
    measured_verdict,
    unmeasured_verdict,
    with_note,
)
from harness.core import stats, steady_state
from harness.core.records import CellRecord
from harness.measure.interleave import interleaved_partners
from harness.store import refs
from harness.store.refs import LoadedRun
from harness.store.results import ResultsError

METHOD_SUMMARY = (
    "ratio = statistic(current)/statistic(baseline); CI at 1-alpha by percentile bootstrap of the log "
    "ratio (exact order-statistic bootstrap for quantiles); two-sided Mann-Whitney U with Holm-Bonferroni "
    "correction over all comparisons; regression only when the CI clears the threshold and the corrected "
    "p < alpha; mde = exp(half-width of the log-ratio CI) - 1. Interleaved A/B runs (harness gate ab) are "
    "compared block by block instead: median of the per-block log ratios, its sign-test interval and the "
    "exact sign test"
)


def load_run_ref(ref: str | Path, results_root: Path | None = None) -> LoadedRun:
    """:func:`harness.store.refs.load_run_ref`, its errors as :class:`GateError` (exit code 2)."""
    try:
        return refs.load_run_ref(ref, results_root)
    except ResultsError as exc:
        raise GateError(str(exc)) from None


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


# ------------------------------------------------------------------------------- two runs


class _Pending(NamedTuple):
    """A verdict before the Holm correction, with the margins its run's instability sets."""

    verdict: MetricVerdict
    regression_margin: float = 1.0
    improvement_margin: float = 1.0


def _paired(bc: CellRecord, cc: CellRecord, braw: pd.DataFrame, craw: pd.DataFrame) -> bool:
    """Whether two cells were measured interleaved in one session (compared block by block)."""
    return interleaved_partners(bc, cc) and is_interleaved(braw) and is_interleaved(craw)


def _instability(cell: CellRecord) -> float:
    """Spread (max/min) between the measurement windows of a cell that failed the steady-state
    check; ``inf`` when the record does not say (then it cannot prove a change at all)."""
    ss = cell.extra.get("steady_state")
    if isinstance(ss, dict) and ss.get("ratio"):
        return max(1.0, float(ss["ratio"]))
    wt = cell.extra.get("window_throughput")
    if wt and len(wt) >= 3:
        r = steady_state.steady_state(np.asarray(wt, dtype=float)).ratio
        if r is not None and math.isfinite(r):
            return max(1.0, float(r))
    return math.inf


def _not_applicable(cid: str, rule: Rule, alpha: float, scenario: str) -> _Pending:
    note = f"{rule.metric.name} is not gated for scenario {scenario}"
    return _Pending(unmeasured_verdict(rule.metric, rule.threshold, alpha, "not applicable", note, cell_id=cid))


def _compare_cell(
    baseline: LoadedRun,
    current: LoadedRun,
    pair: CellPair,
    rules: Sequence[Rule],
    alpha: float,
    n_draws: int,
    seed: int,
) -> list[_Pending]:
    """Uncorrected verdicts of one matched pair of cells, one per rule."""
    bc, cc = pair.baseline, pair.current
    cid = cc.cell_id
    if cc.status != "ok":
        # a baseline left unmeasured only because its interleaved partner (this current
        # cell) failed counts as ok here: the current side broke
        partner_only = bc.status == "skipped" and bool(bc.extra.get("partner_failed"))
        v: Verdict = "failed" if (bc.status == "ok" or partner_only) else "inconclusive"
        note = f"current cell {cc.status}: {cc.error or ''}".strip()
        return [_Pending(unmeasured_verdict(r.metric, r.threshold, alpha, v, note, cell_id=cid)) for r in rules]
    if bc.status != "ok":
        note = f"baseline cell {bc.status}"
        return [
            _Pending(unmeasured_verdict(r.metric, r.threshold, alpha, "inconclusive", note, cell_id=cid)) for r in rules
        ]
    braw, craw = read_raw(baseline, bc.cell_id), read_raw(current, cid)
    scenario = cc.spec.scenario
    out: list[_Pending] = []
    if _paired(bc, cc, braw, craw):
        for r in rules:
            if not r.metric.applies_to(scenario):
                out.append(_not_applicable(cid, r, alpha, scenario))
            else:
                out.append(_Pending(compare_paired(braw, craw, r.metric, r.threshold, alpha, cid)))
        return out
    b_unstable = _instability(bc) if bc.validity.get("steady_state") is False else 1.0
    c_unstable = _instability(cc) if cc.validity.get("steady_state") is False else 1.0
    for r in rules:
        if not r.metric.applies_to(scenario):
            out.append(_not_applicable(cid, r, alpha, scenario))
            continue
        bs, cs = cell_samples(braw, r.metric), cell_samples(craw, r.metric)
        if bs.size < 2 or cs.size < 2:
            note = f"too few samples ({bs.size} baseline, {cs.size} current)"
            out.append(_Pending(unmeasured_verdict(r.metric, r.threshold, alpha, "inconclusive", note, cell_id=cid)))
            continue
        mv = compare_samples(bs, cs, r.metric, r.threshold, alpha, n_draws=n_draws, seed=seed, cell_id=cid)
        if b_unstable > 1 or c_unstable > 1:
            who = " and ".join(f"{n} x{u:.3g}" for n, u in (("baseline", b_unstable), ("current", c_unstable)) if u > 1)
            mv = with_note(
                mv,
                f"unstable measurement ({who} between windows): a change must exceed the threshold and that spread",
            )
        # interference only ever slows a run down: an unstable current run proves a regression
        # only beyond its own spread, an unstable baseline an improvement likewise
        out.append(_Pending(mv, c_unstable, b_unstable))
    return out


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
    """Compare every cell of ``current`` with its baseline cell (:func:`~harness.analysis.gate.matching.match_cells`);
    ``cells`` keeps only the cells whose id it accepts, on both sides.

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
    match = match_cells(
        [c for c in br.cells if cells is None or cells(c.cell_id)],
        [c for c in cr.cells if cells is None or cells(c.cell_id)],
    )
    report = GateReport(
        str(baseline.label or baseline.path), str(current.label or current.path), [str(r) for r in rules], alpha
    )
    if match.only_baseline or match.only_current:
        msg = []
        if match.only_current:
            msg.append(f"cells only in current ({current.path}): {', '.join(match.only_current)}")
        if match.only_baseline:
            msg.append(f"cells only in baseline ({baseline.path}): {', '.join(match.only_baseline)}")
        if not allow_unmatched:
            raise GateError("unmatched cells; " + "; ".join(msg) + " (use --allow-unmatched to compare the rest)")
        report.notes.extend(msg)
    if not match.pairs:
        raise GateError(f"no cells in common between {baseline.path} and {current.path}")
    pending: list[_Pending] = []
    for pair in match.pairs:
        cid = pair.current.cell_id
        if pair.by_legacy_id:
            report.notes.append(
                f"{cid}: compared with baseline cell {pair.baseline.cell_id}, matched by the id without "
                "the stop rule (cell ids before stop rules were part of them)"
            )
        if not same_spec(pair.baseline, pair.current):
            report.notes.append(f"{cid}: specs differ between runs (e.g. stop rule); compared anyway")
        pending.extend(_compare_cell(baseline, current, pair, rules, alpha, n_draws, seed))
    adj = holm_correct([p.verdict.p_value for p in pending])
    tested = sum(math.isfinite(p.verdict.p_value) for p in pending)
    paired_n = [
        p.verdict.n_baseline
        for p in pending
        if p.verdict.note.startswith("interleaved") and math.isfinite(p.verdict.p_value)
    ]
    if paired_n and len(paired_n) == tested and 2 * 0.5 ** max(paired_n) >= alpha / tested:
        # a test on n paired blocks cannot give p below 2 / 2**n (higher still with ties), and
        # Holm's first step needs alpha / comparisons
        report.notes.append(
            f"with at most {max(paired_n)} paired blocks the smallest possible p-value is "
            f"{2 * 0.5 ** max(paired_n):.2g}, not below alpha {alpha:g} / {tested} comparisons (Holm): "
            "no regression or improvement can be shown; measure more rounds"
        )
    for p, pa in zip(pending, adj):
        v = p.verdict
        if math.isfinite(v.p_value):
            v = corrected(v, float(pa), alpha, p.regression_margin, p.improvement_margin)
        report.verdicts.append(v)
    return report


# ------------------------------------------------------------------------------- run sets


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
    the test Welch's t-test, Holm-corrected across cells x metrics. Cells pair across runs by
    id, or by legacy id in runs written before the stop rule was part of cell ids. Unlike
    :func:`compare_runs`, the noise *between* runs is in the interval, so the threshold need
    not absorb it. Cells must be ``ok`` in every run.
    """
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy import stats as sst

    rules = list(rules) if rules is not None else parse_rules(None)
    if len(baselines) < 2 or len(currents) < 2:
        raise GateError("a run-set comparison needs at least 2 baseline and 2 current runs")
    runs = list(baselines) + list(currents)
    ref = runs[0]
    ids = [c.cell_id for c in ref.record.cells]
    # each run's id for every cell of the first run: the same id, or the legacy one in older runs
    local: dict[int, dict[str, str]] = {}
    for r in runs:
        if r.record.schema_version != ref.record.schema_version:
            raise GateError(f"schema mismatch: {r.path} has schema_version {r.record.schema_version}")
        match = match_cells(ref.record.cells, r.record.cells)
        if match.only_baseline or match.only_current:
            raise GateError(
                f"{r.path}: cells differ from {ref.path}: {sorted(match.only_baseline + match.only_current)}"
            )
        local[id(r)] = {p.baseline.cell_id: p.current.cell_id for p in match.pairs}

    def label(rs: Sequence[LoadedRun]) -> str:
        return ",".join(str(r.label or r.path) for r in rs)

    report = GateReport(label(baselines), label(currents), [str(r) for r in rules], alpha)
    pending: list[MetricVerdict] = []
    for ref_id in ids:
        cid = local[id(currents[0])][ref_id]  # verdicts name the cell as the current runs do
        bad = [str(r.path) for r in runs if r.record.cell(local[id(r)][ref_id]).status != "ok"]
        if bad:
            report.notes.append(f"{cid}: not ok in {', '.join(bad)}; not compared")
            continue
        scenario = ref.record.cell(ref_id).spec.scenario
        raws = {id(r): read_raw(r, local[id(r)][ref_id]) for r in runs}
        for rule in rules:
            m = rule.metric
            if not m.applies_to(scenario):
                continue
            fn = stats.resolve_statistic(m.statistic)

            def values(rs: Sequence[LoadedRun]) -> np.ndarray:
                vals = [float(np.asarray(fn(x))) for x in (cell_samples(raws[id(r)], m) for r in rs) if x.size >= 2]
                logs: np.ndarray = np.log(np.asarray([v for v in vals if v > 0], dtype=float))
                return logs

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
                measured_verdict(
                    m,
                    rule.threshold,
                    alpha,
                    baseline_value=float(math.exp(lb.mean())),
                    current_value=float(math.exp(lc.mean())),
                    ratio=math.exp(d),
                    log_low=d - t * se,
                    log_high=d + t * se,
                    p_value=p,
                    mde=math.expm1(t * se),
                    n_baseline=int(lb.size),
                    n_current=int(lc.size),
                    cell_id=cid,
                    note=f"{lb.size} vs {lc.size} runs; Welch t on log per-run {m.statistic}",
                )
            )
    adj = holm_correct([v.p_value for v in pending])
    report.verdicts.extend(corrected(v, float(pa), alpha) for v, pa in zip(pending, adj))
    return report
