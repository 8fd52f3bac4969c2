"""View models of the regressions page: one metric of one cell over the history of runs, and
the gate's verdict of each run against the one before it (:mod:`harness.analysis.gate`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.analysis.gate import GateError, compare_runs, gate_metric, load_run_ref, parse_rules
from harness.app.data import format_number
from harness.app.identity import cell_hardware
from harness.core.metrics import metric_def
from harness.core.records import RunRecord


def cell_history_ids(runs: Sequence[RunRecord]) -> list[str]:
    """Cell ids that appear in at least one run, those in most runs first."""
    counts: dict[str, int] = {}
    for r in runs:
        for c in r.cells:
            counts[c.cell_id] = counts.get(c.cell_id, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))


def metric_history(runs: Sequence[RunRecord], cell_id: str, metric: str) -> pd.DataFrame:
    """``metric`` of ``cell_id`` in every run that has it, oldest first, with the run's
    commit (``environment.project_git.commit``), what the cell ran on (``hardware``), CI and
    provenance."""
    rows = []
    for r in runs:
        c = next((c for c in r.cells if c.cell_id == cell_id), None)
        if c is None:
            continue
        m = c.metrics.get(metric)
        git = r.environment.get("project_git") or {}
        rows.append(
            {
                "run_id": r.run_id,
                "created_utc": r.created_utc,
                "time": pd.to_datetime(r.created_utc, utc=True, errors="coerce"),
                "commit": (git.get("commit") or "")[:12] or None,
                "dirty": git.get("dirty"),
                "status": c.status,
                "hardware": cell_hardware(r, c),
                "value": None if m is None else m.value,
                "ci_low": None if m is None else m.ci_low,
                "ci_high": None if m is None else m.ci_high,
                "unit": metric_def(metric).unit if m is None else m.unit,
                "provenance": None if m is None else m.provenance,
            }
        )
    df = pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "created_utc",
            "time",
            "commit",
            "dirty",
            "status",
            "hardware",
            "value",
            "ci_low",
            "ci_high",
            "unit",
            "provenance",
        ],
    )
    return df.sort_values("created_utc", kind="stable").reset_index(drop=True)


def cell_hardware_names(runs: Sequence[RunRecord]) -> dict[str, str]:
    """Cell id -> what it ran on in the runs that have it (accelerator names, else the CPU
    model; several joined with ``/``)."""
    seen: dict[str, set[str]] = {}
    for r in runs:
        for c in r.cells:
            seen.setdefault(c.cell_id, set()).add(cell_hardware(r, c))
    return {k: " / ".join(sorted(v)) for k, v in seen.items()}


def history_display(hist: pd.DataFrame) -> pd.DataFrame:
    """:func:`metric_history` for display: value and CI as text with the unit in the header
    (text columns are never cut at the left, as a narrow numeric column can be)."""
    unit = next((str(u) for u in hist["unit"].dropna() if u), "")
    suffix = f" ({unit})" if unit else ""
    return pd.DataFrame(
        {
            "run_id": hist["run_id"],
            "created_utc": hist["created_utc"],
            "commit": hist["commit"],
            "dirty": hist["dirty"],
            "status": hist["status"],
            "hardware": hist["hardware"],
            f"value{suffix}": [format_number(v, 6) for v in hist["value"]],
            f"CI{suffix}": [
                "" if lo is None or pd.isna(lo) else f"[{format_number(lo, 6)}, {format_number(hi, 6)}]"
                for lo, hi in zip(hist["ci_low"], hist["ci_high"])
            ],
            "provenance": hist["provenance"],
        }
    )


def verdicts_display(verdicts: pd.DataFrame) -> pd.DataFrame:
    """:func:`gate_history` for display: the change in per cent as text (``+3.1 %``)."""
    out = verdicts.copy()
    out["change_pct"] = ["" if v is None or pd.isna(v) else f"{v:+.2f} %" for v in out["change_pct"]]
    out["p_adjusted"] = ["" if v is None or pd.isna(v) else f"{v:.3g}" for v in out["p_adjusted"]]
    return out.rename(columns={"change_pct": "change", "ci": "CI of change"})


def default_metric(names: Sequence[str]) -> int:
    """Index of the metric the page shows first: ``latency_p99`` where the cell has it, else the first."""
    return list(names).index("latency_p99") if "latency_p99" in names else 0


def split_rules(text: str) -> list[str]:
    """Gate rules typed as one comma-separated line (``"latency_p99:+5%, throughput:-5%"``)."""
    return [r.strip() for r in text.split(",") if r.strip()]


def history_metrics(runs: Sequence[RunRecord], cell_id: str) -> list[str]:
    """Every metric name ``cell_id`` has in any run, sorted."""
    names: set[str] = set()
    for r in runs:
        for c in r.cells:
            if c.cell_id == cell_id:
                names.update(c.metrics)
    return sorted(names)


def gate_history(
    root: Path,
    history: pd.DataFrame,
    cell_id: str,
    rules: Sequence[str] | None = None,
    alpha: float = 0.01,
    n_draws: int = 1000,
) -> pd.DataFrame:
    """Gate verdict (:func:`harness.analysis.gate.compare_runs`) of each run in ``history`` against the
    run before it, for ``cell_id`` only. A pair the gate cannot compare gets verdict
    ``error`` and the gate's message."""
    parsed = parse_rules(rules)
    rows = []
    ids = list(history["run_id"])
    for prev, cur in zip(ids, ids[1:]):
        try:
            rep = compare_runs(
                load_run_ref(prev, root),
                load_run_ref(cur, root),
                parsed,
                alpha,
                allow_unmatched=True,
                cells=lambda c: c == cell_id,
                n_draws=n_draws,
            )
        except GateError as exc:
            rows.append(
                {
                    "baseline": prev,
                    "run_id": cur,
                    "metric": "",
                    "verdict": "error",
                    "change_pct": None,
                    "ci": "",
                    "p_adjusted": None,
                    "note": str(exc),
                }
            )
            continue
        for v in rep.verdicts:
            d = v.to_dict()
            ci = "" if d["ci_low"] is None else f"[{(d['ci_low'] - 1) * 100:+.1f} %, {(d['ci_high'] - 1) * 100:+.1f} %]"
            rows.append(
                {
                    "baseline": prev,
                    "run_id": cur,
                    "metric": v.metric,
                    "verdict": v.verdict,
                    "change_pct": None if d["ratio"] is None else (d["ratio"] - 1) * 100,
                    "ci": ci,
                    "p_adjusted": d["p_adjusted"],
                    "note": v.note,
                }
            )
    return pd.DataFrame(
        rows, columns=["baseline", "run_id", "metric", "verdict", "change_pct", "ci", "p_adjusted", "note"]
    )


_SEVERITY = ("failed", "regression", "error", "inconclusive", "improvement", "no change", "not applicable")


def verdict_per_run(verdicts: pd.DataFrame, metric: str) -> dict[str, str]:
    """Run id -> the gate verdict shown for ``metric``: the verdict of the gate rule on the
    same metric (``latency_p99`` is the gate's ``p99_latency``) where there is one, else the
    worst verdict of the pair."""
    try:
        gname: str | None = gate_metric(metric).name
    except GateError:
        gname = None
    out: dict[str, str] = {}
    for run_id, g in verdicts.groupby("run_id", sort=False):
        same = g[g["metric"] == gname] if gname else g.iloc[0:0]
        pool = list(same["verdict"]) if not same.empty else list(g["verdict"])
        out[str(run_id)] = next((v for v in _SEVERITY if v in pool), pool[0] if pool else "not gated")
    return out
