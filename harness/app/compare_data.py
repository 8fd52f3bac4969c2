"""View models of the compare page: chosen cells side by side, every number with its provenance.

Latencies in ms, throughput in samples/s (or queries/s for offered load). Cells are addressed
by key (:func:`harness.app.data.cell_key`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.gate import latency_samples_ms
from harness.app.data import find_cell, format_number, provenance_kind
from harness.core.metrics import metric_def
from harness.core.records import CellRecord, RunRecord
from harness.store.results import ResultsError, load_raw


def metrics_long(runs: Sequence[RunRecord], keys: Sequence[str], names: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per (cell, metric): value, unit, CI, provenance and its kind."""
    wanted = None if names is None else set(names)
    rows = []
    for key in keys:
        run, cell = find_cell(runs, key)
        for name, m in sorted(cell.metrics.items()):
            if wanted is not None and name not in wanted:
                continue
            rows.append(
                {
                    "key": key,
                    "cell_id": cell.cell_id,
                    "run_id": run.run_id,
                    "metric": name,
                    "value": m.value,
                    "unit": m.unit or metric_def(name).unit,
                    "ci_low": m.ci_low,
                    "ci_high": m.ci_high,
                    "provenance": m.provenance,
                    "kind": provenance_kind(m.provenance),
                    "direction": metric_def(name).direction,
                }
            )
    cols = [
        "key",
        "cell_id",
        "run_id",
        "metric",
        "value",
        "unit",
        "ci_low",
        "ci_high",
        "provenance",
        "kind",
        "direction",
    ]
    return pd.DataFrame(rows, columns=cols)


def latency_cdf(
    runs: Sequence[RunRecord], keys: Sequence[str], root: Path, points: int = 200
) -> tuple[pd.DataFrame, list[str]]:
    """Empirical CDF of per-query latency (``completed_ns - scheduled_ns``, ms) of each cell,
    read from its raw Parquet file and reduced to ``points`` quantiles (plus min and max).
    Returns the table (``key``, ``latency_ms``, ``cdf``, ``provenance``) and a note per cell
    without raw data."""
    frames, notes = [], []
    q = np.linspace(0.0, 1.0, points + 1)
    for key in keys:
        run, cell = find_cell(runs, key)
        try:
            raw = load_raw(run, cell.cell_id, root)
            lat = latency_samples_ms(raw)
        except (ResultsError, OSError, KeyError, ValueError) as exc:
            notes.append(f"{key}: no per-query latencies ({exc})")
            continue
        lat = lat[np.isfinite(lat) & (lat >= 0)]
        if lat.size == 0:
            notes.append(f"{key}: no completed queries")
            continue
        frames.append(
            pd.DataFrame(
                {
                    "key": key,
                    "latency_ms": np.quantile(lat, q),
                    "cdf": q,
                    "n_queries": lat.size,
                    "provenance": "measured",
                }
            )
        )
    df = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["key", "latency_ms", "cdf", "n_queries", "provenance"])
    )
    return df, notes


def _spec_rows(runs: Sequence[RunRecord], keys: Sequence[str]) -> pd.DataFrame:
    rows = []
    for key in keys:
        run, c = find_cell(runs, key)
        rows.append(
            {
                "key": key,
                "run_id": run.run_id,
                "cell_id": c.cell_id,
                "status": c.status,
                "scenario": c.spec.scenario,
                "series": f"{c.spec.model}-{c.spec.size}.{c.spec.backend}.{c.spec.device} · {run.run_id}",
                "batch_size": c.spec.batch_size,
                "slo_ms": c.spec.scenario_options.get("slo_ms"),
            }
        )
    return pd.DataFrame(
        rows, columns=["key", "run_id", "cell_id", "status", "scenario", "series", "batch_size", "slo_ms"]
    )


def _value(cell: CellRecord, name: str) -> tuple[float | None, str | None]:
    m = cell.metrics.get(name)
    return (None, None) if m is None else (m.value, m.provenance)


def throughput_vs_batch(runs: Sequence[RunRecord], keys: Sequence[str]) -> pd.DataFrame:
    """Closed-loop cells (offline, single-stream): throughput (samples/s) against batch size,
    one ``series`` per model x backend x device x run."""
    spec = _spec_rows(runs, keys)
    rows = []
    for _, s in spec.iterrows():
        if s["scenario"] not in ("offline", "single-stream") or s["status"] != "ok":
            continue
        _, cell = find_cell(runs, s["key"])
        v, prov = _value(cell, "throughput")
        if v is None:
            continue
        m = cell.metrics["throughput"]
        rows.append(
            {
                "key": s["key"],
                "series": s["series"],
                "scenario": s["scenario"],
                "batch_size": s["batch_size"],
                "throughput": v,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "provenance": prov,
            }
        )
    return pd.DataFrame(
        rows, columns=["key", "series", "scenario", "batch_size", "throughput", "ci_low", "ci_high", "provenance"]
    )


def latency_vs_qps(
    runs: Sequence[RunRecord], keys: Sequence[str], percentile: str = "latency_p99"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Open-loop cells: latency percentile (ms) against offered load (queries/s).

    Returns ``points`` (``online`` cells and the probes of ``online-peak`` searches, with
    ``source`` = ``cell`` / ``peak probe``), ``slo`` (one row per series with an SLO) and
    ``peaks`` (``peak_qps`` of online-peak cells)."""
    spec = _spec_rows(runs, keys)
    pts, slo, peaks = [], [], []
    for _, s in spec.iterrows():
        if s["status"] != "ok" or not str(s["scenario"]).startswith("online"):
            continue
        _, cell = find_cell(runs, s["key"])
        if s["slo_ms"] is not None:
            slo.append({"series": s["series"], "slo_ms": float(s["slo_ms"])})
        qps, _ = _value(cell, "offered_qps")
        lat, prov = _value(cell, percentile)
        if qps is not None and lat is not None:
            slo_met = cell.validity.get("slo_met")
            pts.append(
                {
                    "key": s["key"],
                    "series": s["series"],
                    "offered_qps": qps,
                    "latency_ms": lat,
                    "source": "cell",
                    "passed": slo_met,
                    "provenance": prov,
                }
            )
        peak = (cell.extra or {}).get("peak") or {}
        for p in peak.get("probes", []):
            if p.get("qps") is not None and p.get("latency_ms") is not None:
                pts.append(
                    {
                        "key": s["key"],
                        "series": s["series"],
                        "offered_qps": p["qps"],
                        "latency_ms": p["latency_ms"],
                        "source": "peak probe",
                        "passed": p.get("passed"),
                        "provenance": "measured",
                    }
                )
        pq, pprov = _value(cell, "peak_qps")
        if pq is not None:
            peaks.append({"key": s["key"], "series": s["series"], "peak_qps": pq, "provenance": pprov})
    points = pd.DataFrame(pts, columns=["key", "series", "offered_qps", "latency_ms", "source", "passed", "provenance"])
    slo_df = pd.DataFrame(slo, columns=["series", "slo_ms"]).drop_duplicates()
    return points, slo_df, pd.DataFrame(peaks, columns=["key", "series", "peak_qps", "provenance"])


def validity_table(runs: Sequence[RunRecord], keys: Sequence[str]) -> pd.DataFrame:
    """One row per cell: status, overall ``valid``, each validity flag (True/False, None where
    the scenario has no such check), failed flags spelled out, parity and the error."""
    rows: list[dict[str, Any]] = []
    flags: set[str] = set()
    for key in keys:
        _, c = find_cell(runs, key)
        flags.update(c.validity)
    for key in keys:
        _, c = find_cell(runs, key)
        row: dict[str, Any] = {"key": key, "status": c.status, "valid": c.valid}
        for f in sorted(flags):
            row[f] = c.validity.get(f)
        row["failed_checks"] = ", ".join(k for k, v in c.validity.items() if not v)
        row["parity"] = None if c.parity is None or not c.parity.checked else c.parity.passed
        row["error"] = c.error
        rows.append(row)
    return pd.DataFrame(rows)


def only_metrics(long: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """The rows of :func:`metrics_long` whose metric is one of ``names``."""
    return long[long["metric"].isin(list(names))]


def metric_display(long: pd.DataFrame) -> pd.DataFrame:
    """``metrics_long`` as a display table: value and CI as text, unit and provenance kept."""
    out = long.copy()
    out["CI"] = [
        "" if lo is None or hi is None or pd.isna(lo) or pd.isna(hi) else f"[{format_number(lo)}, {format_number(hi)}]"
        for lo, hi in zip(out["ci_low"], out["ci_high"])
    ]
    out["value"] = [format_number(v) for v in out["value"]]
    return out[["key", "metric", "value", "unit", "CI", "provenance"]]


def wide_with_provenance(long: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, one column per metric as ``"value (provenance)"`` text."""
    if long.empty:
        return pd.DataFrame()
    txt = long.assign(
        text=[
            f"{format_number(v)} {u} ({p})".replace("  ", " ")
            for v, u, p in zip(long["value"], long["unit"], long["provenance"])
        ]
    )
    return txt.pivot_table(index="key", columns="metric", values="text", aggfunc="first").reset_index()
