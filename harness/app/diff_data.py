"""View models of the diff page: two cells (any two, also with different cell ids, e.g. the
same model on a CPU and on a GPU) or two runs side by side, each metric's change with its
confidence interval and a verdict.

How each row is decided (``method`` column says which applied):

* ``raw samples``: both cells have raw per-query files and the metric is one the gate compares
  (latency percentiles and mean; throughput in closed-loop scenarios):
  :func:`harness.analysis.gate.compare_samples` (bootstrap interval of the ratio, Mann-Whitney
  U), p-values Holm-corrected over every tested row of the table, verdict by
  :func:`harness.analysis.gate.verdicts.decide`; the mean of a cell with more than
  :data:`MAX_MEAN_SAMPLES` queries is compared on a seeded random subsample of that many (its
  bootstrap resamples every query; quantiles use every sample);
* ``recorded CIs``: no raw data, both values have a recorded interval: the ratio interval
  ``[low_b / high_a, high_b / low_a]`` (conservative: it holds whenever both intervals do) and
  the same verdict rule, taking the difference as significant exactly when that interval
  excludes 1 (no test statistic);
* ``values only``: no interval: the change is shown, the verdict is ``untested``.

Metrics with no better direction get verdict ``not rated``. Changes are ``b / a - 1`` in per
cent (``a`` = baseline, ``b`` = the cell compared with it). Nothing here imports Streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from harness.analysis.gate import GATE_METRICS, cell_samples, compare_samples, holm_correct, match_cells
from harness.analysis.gate.verdicts import corrected, decide
from harness.app.data import cell_key, device_memory_metrics, find_cell, unit_of
from harness.app.identity import cell_name
from harness.core.metrics import Metric, metric_def
from harness.core.records import CellRecord, RunRecord
from harness.store.results import ResultsError, load_raw

#: per side, the most per-query samples the mean's bootstrap resamples (quantiles use all of them)
MAX_MEAN_SAMPLES = 20_000
#: metrics the run diff compares by default
RUN_DIFF_METRICS: tuple[str, ...] = ("latency_p50", "latency_p99", "throughput", "power_w")
DIFF_COLUMNS: list[str] = [
    "cell_a",
    "cell_b",
    "metric",
    "unit",
    "better",
    "a",
    "b",
    "change_pct",
    "ci_low_pct",
    "ci_high_pct",
    "verdict",
    "p_adjusted",
    "method",
]


def _metrics(cell: CellRecord) -> dict[str, Metric]:
    """The cell's metrics with device memory split by source (never summed)."""
    out = {k: v for k, v in cell.metrics.items() if k != "device_memory_bytes"}
    out.update(device_memory_metrics(cell))
    return out


def _raw(run: RunRecord, cell: CellRecord, root: Path) -> pd.DataFrame | None:
    try:
        return load_raw(run, cell.cell_id, root)
    except (ResultsError, OSError, ValueError):
        return None


def _pct(ratio: float | None) -> float | None:
    return None if ratio is None or not math.isfinite(ratio) else (ratio - 1.0) * 100.0


class _Row(NamedTuple):
    row: dict[str, Any]
    verdict: Any  # a MetricVerdict when the row was tested on raw samples


def compare_metric(
    name: str,
    ma: Metric,
    mb: Metric,
    raws: tuple[pd.DataFrame | None, pd.DataFrame | None],
    scenarios: tuple[str, str],
    threshold: float,
    alpha: float,
    n_draws: int,
) -> _Row:
    """One metric of cell A (``ma``) against cell B (``mb``): the table row, plus the gate's
    uncorrected verdict when it was tested on the raw samples (``raws``, None where a cell has
    no raw file; the caller Holm-corrects those). ``scenarios`` of A and B decide whether the
    gate compares throughput (closed loops only)."""
    a, b = ma.value, mb.value
    d = metric_def(name)
    row: dict[str, Any] = {
        "metric": name,
        "unit": ma.unit or unit_of(name),
        "better": {"lower": "lower", "higher": "higher"}.get(d.direction, "-"),
        "a": a,
        "b": b,
        "change_pct": _pct(b / a) if a and b is not None and a > 0 else None,
        "ci_low_pct": None,
        "ci_high_pct": None,
        "verdict": "untested",
        "p_adjusted": None,
        "method": "values only",
    }
    if d.direction == "none":
        row["verdict"] = "not rated"
        return _Row(row, None)
    gm = GATE_METRICS.get(name)
    ra, rb = raws
    if gm is not None and ra is not None and rb is not None and all(gm.applies_to(s) for s in scenarios):
        try:
            sa, sb = cell_samples(ra, gm), cell_samples(rb, gm)
        except (KeyError, ValueError):
            sa = sb = np.array([])
        if sa.size >= 2 and sb.size >= 2:
            method = f"raw samples ({sa.size} vs {sb.size})"
            if gm.statistic == "mean" and max(sa.size, sb.size) > MAX_MEAN_SAMPLES:
                # the mean's bootstrap resamples every query n_draws times: a seeded uniform
                # subsample keeps it interactive (a wider, still valid interval)
                rng = np.random.default_rng(0)
                sa, sb = (
                    x if x.size <= MAX_MEAN_SAMPLES else rng.choice(x, MAX_MEAN_SAMPLES, replace=False)
                    for x in (sa, sb)
                )
                method += f", mean from a random subsample of {MAX_MEAN_SAMPLES:,} per side"
            mv = compare_samples(sa, sb, gm, threshold, alpha, n_draws=n_draws)
            row["method"] = method
            return _Row(row, mv)
    bounds = [ma.ci_low, ma.ci_high, mb.ci_low, mb.ci_high]
    if all(v is not None and v > 0 for v in bounds):
        lo_a, hi_a, lo_b, hi_b = (float(v) for v in bounds if v is not None)
        lo, hi = lo_b / hi_a, hi_b / lo_a
        significant = not (lo <= 1.0 <= hi)
        row.update(
            ci_low_pct=_pct(lo),
            ci_high_pct=_pct(hi),
            verdict=decide(lo, hi, 0.0 if significant else 1.0, d.direction, threshold, alpha),
            method="recorded CIs (conservative bounds, no test)",
        )
    return _Row(row, None)


def _finish(rows: list[_Row], alpha: float) -> list[dict[str, Any]]:
    """Holm-correct the rows tested on raw samples and fill their interval and verdict."""
    tested = [r for r in rows if r.verdict is not None]
    adj = holm_correct([r.verdict.p_value for r in tested])
    for r, pa in zip(tested, adj):
        mv = r.verdict
        if math.isfinite(mv.p_value):
            mv = corrected(mv, float(pa), alpha)
        r.row.update(
            ci_low_pct=_pct(mv.ci_low),
            ci_high_pct=_pct(mv.ci_high),
            verdict=mv.verdict,
            p_adjusted=None if not math.isfinite(mv.p_adjusted) else mv.p_adjusted,
        )
    return [r.row for r in rows]


def _pair_rows(
    runs: Sequence[RunRecord],
    key_a: str,
    key_b: str,
    root: Path,
    names: Iterable[str] | None,
    threshold: float,
    alpha: float,
    n_draws: int,
) -> list[_Row]:
    run_a, ca = find_cell(runs, key_a)
    run_b, cb = find_cell(runs, key_b)
    ma, mb = _metrics(ca), _metrics(cb)
    wanted = sorted(set(ma) & set(mb)) if names is None else [n for n in names if n in ma and n in mb]
    raws = (_raw(run_a, ca, root), _raw(run_b, cb, root))
    out = []
    for name in wanted:
        if ma[name].value is None or mb[name].value is None:
            continue
        r = compare_metric(
            name, ma[name], mb[name], raws, (ca.spec.scenario, cb.spec.scenario), threshold, alpha, n_draws
        )
        r.row.update(cell_a=cell_name(run_a, ca), cell_b=cell_name(run_b, cb))
        out.append(r)
    return out


def diff_cells(
    runs: Sequence[RunRecord],
    key_a: str,
    key_b: str,
    root: Path,
    names: Iterable[str] | None = None,
    *,
    threshold: float = 0.05,
    alpha: float = 0.01,
    n_draws: int = 1000,
) -> pd.DataFrame:
    """Every metric both cells have (or those in ``names``): ``a`` (baseline), ``b``, change
    and its interval in per cent, verdict and method (module doc). ``threshold`` is the
    relative change that counts (0.05 = 5 %), ``alpha`` the significance level."""
    rows = _finish(_pair_rows(runs, key_a, key_b, root, names, threshold, alpha, n_draws), alpha)
    return pd.DataFrame(rows, columns=DIFF_COLUMNS)


def _comparable(cell: CellRecord) -> tuple[Any, ...]:
    """What must agree for two cells of different runs to be compared when their ids differ
    (device, backend and its options may differ): model, size, scenario and its options."""
    s = cell.spec
    opts = {k: v for k, v in s.scenario_options.items() if k != "stop"}
    return (s.model, s.size, repr(sorted(s.model_params.items())), s.scenario, repr(sorted(opts.items(), key=str)))


def pair_runs(a: RunRecord, b: RunRecord) -> tuple[list[tuple[CellRecord, CellRecord]], list[str]]:
    """Cells of run ``a`` and run ``b`` paired: by cell id first (the gate's matching), then
    the cells left over by model, size, scenario and its options where exactly one cell on
    each side has them (so a CPU run pairs with a GPU run of the same suite). Returns the
    pairs and a note per cell left unpaired."""
    m = match_cells(a.cells, b.cells)
    pairs = [(p.baseline, p.current) for p in m.pairs]
    left_a = [c for c in a.cells if c.cell_id in m.only_baseline]
    left_b = [c for c in b.cells if c.cell_id in m.only_current]
    groups_a: dict[tuple[Any, ...], list[CellRecord]] = {}
    groups_b: dict[tuple[Any, ...], list[CellRecord]] = {}
    for c in left_a:
        groups_a.setdefault(_comparable(c), []).append(c)
    for c in left_b:
        groups_b.setdefault(_comparable(c), []).append(c)
    done: set[str] = set()
    for k, ca in groups_a.items():
        cb = groups_b.get(k, [])
        if len(ca) == 1 and len(cb) == 1:
            pairs.append((ca[0], cb[0]))
            done.update((ca[0].cell_id, cb[0].cell_id))
    notes = [f"only in {a.run_id}: {c.cell_id}" for c in left_a if c.cell_id not in done]
    notes += [f"only in {b.run_id}: {c.cell_id}" for c in left_b if c.cell_id not in done]
    return pairs, notes


def diff_runs(
    runs: Sequence[RunRecord],
    run_a: str,
    run_b: str,
    root: Path,
    names: Iterable[str] = RUN_DIFF_METRICS,
    *,
    threshold: float = 0.05,
    alpha: float = 0.01,
    n_draws: int = 1000,
) -> tuple[pd.DataFrame, list[str]]:
    """Each pair of cells of two runs (:func:`pair_runs`) x each metric in ``names`` both
    have, as in :func:`diff_cells` (Holm correction over the whole table), plus the notes on
    unpaired cells. Raises ``KeyError`` for a run id not in ``runs``."""
    by_id = {r.run_id: r for r in runs}
    for rid in (run_a, run_b):
        if rid not in by_id:
            raise KeyError(f"no run {rid!r} in the results store")
    ra, rb = by_id[run_a], by_id[run_b]
    pairs, notes = pair_runs(ra, rb)
    rows: list[_Row] = []
    names = list(names)
    for ca, cb in pairs:
        ka, kb = cell_key(ra.run_id, ca.cell_id), cell_key(rb.run_id, cb.cell_id)
        rows.extend(_pair_rows(runs, ka, kb, root, names, threshold, alpha, n_draws))
    if not pairs:
        notes.insert(0, "no cells of these runs are comparable (same model, size, scenario and options)")
    return pd.DataFrame(_finish(rows, alpha), columns=DIFF_COLUMNS), notes


def diff_display(df: pd.DataFrame) -> pd.DataFrame:
    """A diff table for display: values with units in the header, changes as ``+12.3 %`` and
    the interval as ``[+8.1 %, +16.0 %]``."""

    def pct(v: Any) -> str:
        return "" if v is None or pd.isna(v) else f"{v:+.1f} %"

    out = pd.DataFrame(
        {
            **({"cell A": df["cell_a"], "cell B": df["cell_b"]} if df["cell_a"].nunique() > 1 else {}),
            "metric": df["metric"],
            "unit": df["unit"],
            "better": df["better"],
            "A": [f"{v:.4g}" if v is not None and not pd.isna(v) else "-" for v in df["a"]],
            "B": [f"{v:.4g}" if v is not None and not pd.isna(v) else "-" for v in df["b"]],
            "change (B/A - 1)": [pct(v) for v in df["change_pct"]],
            "CI of change": [
                "" if pd.isna(lo) or pd.isna(hi) else f"[{pct(lo)}, {pct(hi)}]"
                for lo, hi in zip(df["ci_low_pct"], df["ci_high_pct"])
            ],
            "verdict": df["verdict"],
            "p (Holm)": ["" if p is None or pd.isna(p) else f"{p:.3g}" for p in df["p_adjusted"]],
            "method": df["method"],
        }
    )
    return out
